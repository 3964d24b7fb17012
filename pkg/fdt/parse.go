package fdt

import (
	"bytes"
	"encoding/binary"
	"math"
)

// header holds the fields of a validated header.
type header struct {
	size                  int // header bytes for this version
	total                 int
	offStruct, sizeStruct int // sizeStruct is -1 for version 16 (not recorded)
	offStrings, sizeStr   int
	offRsvmap             int
	version, bootCPUID    uint32
}

// Header field offsets.
const (
	hMagic = 4 * iota
	hTotalSize
	hOffStruct
	hOffStrings
	hOffRsvmap
	hVersion
	hLastComp
	hBootCPUID
	hSizeStrings
	hSizeStruct
)

// TotalSize validates the header at the start of header (the first 40 bytes
// are enough) and returns the blob's totalsize, so a caller knows how many
// bytes to map before calling Parse.
func TotalSize(header []byte) (int, error) {
	h, err := readHeader(header)
	if err != nil {
		return 0, err
	}
	return h.total, nil
}

func readHeader(b []byte) (header, error) {
	be := binary.BigEndian
	var h header
	if len(b) < 4 {
		return h, parseErr(0, "header truncated: %d bytes", len(b))
	}
	if m := be.Uint32(b); m != Magic {
		return h, parseErr(hMagic, "bad magic %#08x, want %#08x", m, Magic)
	}
	if len(b) < headerSizeV16 {
		return h, parseErr(0, "header truncated: %d bytes, need %d", len(b), headerSizeV16)
	}
	h.version, h.bootCPUID = be.Uint32(b[hVersion:]), be.Uint32(b[hBootCPUID:])
	lastComp := be.Uint32(b[hLastComp:])
	switch {
	case h.version < MinReadVersion:
		return h, parseErr(hVersion, "version %d unsupported, need >= %d", h.version, MinReadVersion)
	case lastComp > Version:
		return h, parseErr(hLastComp, "last_comp_version %d > %d: incompatible", lastComp, Version)
	case lastComp > h.version:
		return h, parseErr(hLastComp, "last_comp_version %d exceeds version %d", lastComp, h.version)
	}
	h.size, h.sizeStruct = headerSize, -1 // size_dt_struct is new in version 17
	if h.version == 16 {
		h.size = headerSizeV16
	} else if len(b) < headerSize {
		return h, parseErr(0, "header truncated: %d bytes, need %d", len(b), headerSize)
	}
	if h.total = int(be.Uint32(b[hTotalSize:])); h.total < h.size || h.total > math.MaxInt32 {
		return h, parseErr(hTotalSize, "totalsize %d out of range [%d, %d]", uint32(h.total), h.size, math.MaxInt32)
	}
	// Every block lies after the header within totalsize. Sums are taken in
	// uint64 so that no field value can wrap them.
	blocks := []struct {
		name      string
		offField  int
		off, size *int
		sizeField int
		align     int
	}{
		{"memory reservation map", hOffRsvmap, &h.offRsvmap, nil, 0, 8},
		{"struct block", hOffStruct, &h.offStruct, &h.sizeStruct, hSizeStruct, 4},
		{"strings block", hOffStrings, &h.offStrings, &h.sizeStr, hSizeStrings, 1},
	}
	for _, k := range blocks {
		off, size := uint64(be.Uint32(b[k.offField:])), uint64(reserveSize)
		if k.size != nil {
			size = 0
			if k.sizeField < h.size {
				size = uint64(be.Uint32(b[k.sizeField:]))
			}
		}
		switch {
		case off%uint64(k.align) != 0:
			return h, parseErr(k.offField, "%s offset %#x not %d-byte aligned", k.name, off, k.align)
		case off < uint64(h.size):
			return h, parseErr(k.offField, "%s offset %#x overlaps the header", k.name, off)
		case off+size > uint64(h.total):
			return h, parseErr(k.offField, "%s [%#x, +%#x) exceeds totalsize %#x", k.name, off, size, h.total)
		}
		*k.off = int(off)
		if k.size != nil && k.sizeField < h.size {
			*k.size = int(size)
		}
	}
	if h.sizeStruct%4 > 0 { // -1 (version 16) passes
		return h, parseErr(hSizeStruct, "size_dt_struct %d not a multiple of 4", h.sizeStruct)
	}
	if overlap(h.offStruct, h.sizeStruct, h.offStrings, h.sizeStr) {
		return h, parseErr(hOffStrings, "strings block overlaps struct block")
	}
	return h, nil
}

func overlap(off1, size1, off2, size2 int) bool {
	return size1 > 0 && size2 > 0 && off1 < off2+size2 && off2 < off1+size1
}

// Parse validates blob strictly and returns its tree. Only the first
// totalsize bytes are used; the tree shares no memory with blob. On error
// the tree is nil and the error is a *ParseError.
func Parse(blob []byte) (*Tree, error) {
	return parse(blob, nil)
}

// Layout is where the nodes and properties of a parsed blob lie, as byte
// offsets from the blob's start in struct block order: what code that
// edits a blob in place needs.
type Layout struct {
	Nodes []NodeSpan
	Props []PropSpan
}

// NodeSpan is a node's tokens: its FDT_BEGIN_NODE at Begin through its
// FDT_END_NODE, which ends at End. Path is absolute ("/", "/a/b").
type NodeSpan struct {
	Path       string
	Begin, End int
}

// PropSpan is one property of the node at path Node: its FDT_PROP token
// at Token and its Size-byte value at Value.
type PropSpan struct {
	Node, Name         string
	Token, Value, Size int
}

// ParseLayout is Parse that also returns where every node and property
// lies in blob.
func ParseLayout(blob []byte) (*Tree, *Layout, error) {
	lay := &Layout{}
	t, err := parse(blob, lay)
	if err != nil {
		return nil, nil, err
	}
	return t, lay, nil
}

// parse is Parse, recording the layout in lay unless it is nil.
func parse(blob []byte, lay *Layout) (*Tree, error) {
	h, err := readHeader(blob)
	if err != nil {
		return nil, err
	}
	if h.total > len(blob) {
		return nil, parseErr(hTotalSize, "totalsize %d exceeds the %d bytes available", h.total, len(blob))
	}
	blob = blob[:h.total]
	t := &Tree{BootCPUID: h.bootCPUID, Version: h.version}

	off := h.offRsvmap
	for {
		if off+reserveSize > h.total {
			return nil, parseErr(off, "memory reservation map not terminated within totalsize")
		}
		r := Reservation{binary.BigEndian.Uint64(blob[off:]), binary.BigEndian.Uint64(blob[off+8:])}
		off += reserveSize
		if r == (Reservation{}) {
			break
		}
		if len(t.Reserved) >= MaxReservations {
			return nil, parseErr(off, "more than %d memory reservations", MaxReservations)
		}
		t.Reserved = append(t.Reserved, r)
	}
	rsvSize := off - h.offRsvmap
	if err := checkOverlaps(h, rsvSize, h.sizeStruct); err != nil {
		return nil, err
	}

	exact, structEnd := h.sizeStruct >= 0, h.offStruct+h.sizeStruct
	if !exact { // version 16: the struct block ends at FDT_END
		structEnd = h.total
		for _, b := range []int{h.offStrings, h.offRsvmap} {
			if b > h.offStruct && b < structEnd {
				structEnd = b
			}
		}
	}
	strs := blob[h.offStrings : h.offStrings+h.sizeStr]
	root, sizeStruct, err := parseStruct(blob[:structEnd], h.offStruct, strs, h.offStrings, exact, lay)
	if err != nil {
		return nil, err
	}
	if err := checkOverlaps(h, rsvSize, sizeStruct); err != nil { // version 16 learns sizeStruct late
		return nil, err
	}
	t.Root = root
	return t, nil
}

// checkOverlaps rejects blocks sharing bytes; a negative size is unknown.
func checkOverlaps(h header, rsvSize, sizeStruct int) error {
	switch {
	case overlap(h.offRsvmap, rsvSize, h.offStrings, h.sizeStr):
		return parseErr(hOffRsvmap, "memory reservation map overlaps strings block")
	case overlap(h.offRsvmap, rsvSize, h.offStruct, sizeStruct):
		return parseErr(hOffRsvmap, "memory reservation map overlaps struct block")
	case overlap(h.offStruct, sizeStruct, h.offStrings, h.sizeStr):
		return parseErr(hOffStrings, "strings block overlaps struct block")
	}
	return nil
}

type parseFrame struct {
	node            *Node
	props, children nameSet
	path            string // with a Layout: the node's path
	span            int    // and its index in Layout.Nodes
}

// parseStruct walks the struct block from b[start:] to the end of b and
// returns the root and the struct block's length up to FDT_END, which must be
// all of it if exact. Offsets in errors are blob offsets: b and strs start
// where the blob starts and at strsOff. Node and property offsets go to lay
// unless it is nil.
func parseStruct(b []byte, start int, strs []byte, strsOff int, exact bool, lay *Layout) (*Node, int, error) {
	be := binary.BigEndian
	var (
		root          *Node
		stack         []parseFrame
		nodes, nprops int
	)
	// zeroPad checks that the padding up to the next 4-byte boundary is
	// within b and zero, and returns the boundary. Node names are always
	// zero-padded: fdt_begin_node and fdt_add_subnode clear it.
	zeroPad := func(pos int, what string) (int, error) {
		next := align4(pos)
		if next > len(b) {
			return 0, parseErr(pos, "%s padding runs past the struct block", what)
		}
		for i := pos; i < next; i++ {
			if b[i] != 0 {
				return 0, parseErr(i, "%s padding byte is %#02x, want 0", what, b[i])
			}
		}
		return next, nil
	}
	for pos := start; ; {
		if pos+4 > len(b) {
			return nil, 0, parseErr(pos, "struct block ends without FDT_END")
		}
		tokOff, tok := pos, be.Uint32(b[pos:])
		pos += 4
		switch tok {
		case tokenNop:
		case tokenBeginNode:
			n := bytes.IndexByte(b[pos:], 0)
			if n < 0 {
				return nil, 0, parseErr(pos, "node name not NUL-terminated within the struct block")
			}
			node := &Node{Name: string(b[pos : pos+n])}
			var err error
			if pos, err = zeroPad(pos+n+1, "node name"); err != nil {
				return nil, 0, err
			}
			switch {
			case root == nil && node.Name != "":
				return nil, 0, parseErr(tokOff, "root node named %q, want \"\"", node.Name)
			case root != nil && len(stack) == 0:
				return nil, 0, parseErr(tokOff, "second root node %q", node.Name)
			case len(stack) >= MaxDepth:
				return nil, 0, parseErr(tokOff, "nodes nested deeper than %d", MaxDepth)
			case nodes >= MaxNodes:
				return nil, 0, parseErr(tokOff, "more than %d nodes", MaxNodes)
			}
			nodes++
			if root == nil {
				root = node
			} else {
				if why := validName(node.Name, true); why != "" {
					return nil, 0, parseErr(tokOff, "node %s", why)
				}
				parent := &stack[len(stack)-1]
				if !parent.children.add(node.Name) {
					return nil, 0, parseErr(tokOff, "duplicate node %q", node.Name)
				}
				parent.node.Children = append(parent.node.Children, node)
			}
			frame := parseFrame{node: node}
			if lay != nil {
				frame.path = "/"
				if len(stack) > 0 {
					frame.path = joinPath(stack[len(stack)-1].path, node.Name)
				}
				frame.span = len(lay.Nodes)
				lay.Nodes = append(lay.Nodes, NodeSpan{Path: frame.path, Begin: tokOff})
			}
			stack = append(stack, frame)
		case tokenEndNode:
			if len(stack) == 0 {
				return nil, 0, parseErr(tokOff, "FDT_END_NODE without an open node")
			}
			if lay != nil {
				lay.Nodes[stack[len(stack)-1].span].End = pos
			}
			stack = stack[:len(stack)-1]
		case tokenProp:
			if len(stack) == 0 {
				return nil, 0, parseErr(tokOff, "property outside any node")
			}
			top := &stack[len(stack)-1]
			if len(top.node.Children) > 0 {
				return nil, 0, parseErr(tokOff, "property after a subnode")
			}
			if pos+8 > len(b) {
				return nil, 0, parseErr(pos, "property header runs past the struct block")
			}
			size, nameoff := be.Uint32(b[pos:]), be.Uint32(b[pos+4:])
			pos += 8
			if uint64(size) > uint64(len(b)-pos) {
				return nil, 0, parseErr(tokOff+4, "property length %d runs past the struct block", size)
			}
			if uint64(nameoff) >= uint64(len(strs)) {
				return nil, 0, parseErr(tokOff+8, "nameoff %d outside the strings block of %d bytes", nameoff, len(strs))
			}
			n := bytes.IndexByte(strs[nameoff:], 0)
			if n < 0 {
				return nil, 0, parseErr(strsOff+int(nameoff), "property name not NUL-terminated within the strings block")
			}
			name := string(strs[nameoff : int(nameoff)+n])
			if why := validName(name, false); why != "" {
				return nil, 0, parseErr(tokOff, "property %s", why)
			}
			if nprops >= MaxProperties {
				return nil, 0, parseErr(tokOff, "more than %d properties", MaxProperties)
			}
			nprops++
			if !top.props.add(name) {
				return nil, 0, parseErr(tokOff, "duplicate property %q", name)
			}
			value := append([]byte(nil), b[pos:pos+int(size)]...)
			top.node.Props = append(top.node.Props, Property{Name: name, Value: value})
			if lay != nil {
				lay.Props = append(lay.Props, PropSpan{Node: top.path, Name: name, Token: tokOff, Value: pos, Size: int(size)})
			}
			// Not zeroPad: libfdt's fdt_setprop leaves whatever the
			// buffer held in the padding after a value, and readers
			// (libfdt, the kernel) ignore it.
			pos = align4(pos + int(size))
			if pos > len(b) {
				return nil, 0, parseErr(pos, "property value padding runs past the struct block")
			}
		case tokenEnd:
			switch {
			case root == nil:
				return nil, 0, parseErr(tokOff, "FDT_END before the root node")
			case len(stack) > 0:
				return nil, 0, parseErr(tokOff, "FDT_END with %d nodes still open", len(stack))
			case exact && pos != len(b):
				return nil, 0, parseErr(pos, "%d bytes after FDT_END within size_dt_struct", len(b)-pos)
			}
			return root, pos - start, nil
		default:
			return nil, 0, parseErr(tokOff, "unknown token %#x", tok)
		}
	}
}

func joinPath(parent, name string) string {
	if parent == "/" {
		return "/" + name
	}
	return parent + "/" + name
}

package corrupt

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/kho-sim/kho-sim/pkg/fdt"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// FDT header field offsets and struct block tokens (DTSpec 5.2, 5.4). fdt
// does not export where values live in a blob, so the walker below finds them.
const (
	fdtHeaderSize   = 40
	hMagic          = 0
	hTotalSize      = 4
	hOffStruct      = 8
	hOffStrings     = 12
	hSizeStrings    = 32
	hSizeStruct     = 36
	tokenBeginNode  = 1
	tokenEndNode    = 2
	tokenProp       = 3
	tokenNop        = 4
	tokenEnd        = 9
	propHeaderBytes = 12 // FDT_PROP, len, nameoff
)

var be = binary.BigEndian

// blob is an FDT in the region, parsed, with the byte offsets of its nodes
// and properties.
type blob struct {
	what  string // "KHO root FDT", for descriptions
	pa    uint64
	raw   []byte // aliases the region; only read
	tree  *fdt.Tree
	nodes []nodeSpan
	props []propSpan
}

// nodeSpan is a node's tokens, FDT_BEGIN_NODE through its FDT_END_NODE.
type nodeSpan struct {
	path       string
	begin, end int
}

// propSpan locates one FDT_PROP: its token and its value.
type propSpan struct {
	node, name string
	tok        int
	value      int
	size       int
}

// readBlob reads and strictly parses the FDT at pa, sized by its own header,
// then walks its struct block for offsets.
func readBlob(r *physmem.Region, pa uint64, what string) (*blob, error) {
	hdr, err := r.Bytes(pa, fdtHeaderSize)
	if err != nil {
		return nil, fmt.Errorf("%s at %#x: %w", what, pa, err)
	}
	size, err := fdt.TotalSize(hdr)
	if err != nil {
		return nil, fmt.Errorf("%s at %#x: %w", what, pa, err)
	}
	raw, err := r.Bytes(pa, uint64(size))
	if err != nil {
		return nil, fmt.Errorf("%s at %#x: totalsize %d: %w", what, pa, size, err)
	}
	tree, err := fdt.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s at %#x: %w", what, pa, err)
	}
	b := &blob{what: what, pa: pa, raw: raw, tree: tree}
	if err := b.walk(); err != nil {
		return nil, fmt.Errorf("%s at %#x: %w", what, pa, err)
	}
	return b, nil
}

// walk records where each node and property lies. Parse has accepted the
// blob already; the bounds are checked again anyway so that no blob, however
// it came to be, makes the walk panic.
func (b *blob) walk() error {
	raw := b.raw
	strOff, strSize := int(be.Uint32(raw[hOffStrings:])), int(be.Uint32(raw[hSizeStrings:]))
	if strOff < 0 || strSize < 0 || strOff+strSize > len(raw) {
		return fmt.Errorf("strings block [%#x, +%#x) outside the blob", strOff, strSize)
	}
	strs := raw[strOff : strOff+strSize]
	var open []int // indices into b.nodes
	for pos := int(be.Uint32(raw[hOffStruct:])); ; {
		if pos < 0 || pos+4 > len(raw) {
			return fmt.Errorf("struct block runs past the blob at %#x", pos)
		}
		tokOff, tok := pos, be.Uint32(raw[pos:])
		pos += 4
		switch tok {
		case tokenNop:
		case tokenBeginNode:
			n := bytes.IndexByte(raw[pos:], 0)
			if n < 0 {
				return fmt.Errorf("node name at %#x not terminated", pos)
			}
			path := "/"
			if len(open) > 0 {
				path = joinPath(b.nodes[open[len(open)-1]].path, string(raw[pos:pos+n]))
			}
			open = append(open, len(b.nodes))
			b.nodes = append(b.nodes, nodeSpan{path: path, begin: tokOff})
			pos = align4(pos + n + 1)
		case tokenEndNode:
			if len(open) == 0 {
				return fmt.Errorf("FDT_END_NODE at %#x without a node", tokOff)
			}
			b.nodes[open[len(open)-1]].end = pos
			open = open[:len(open)-1]
		case tokenProp:
			if pos+8 > len(raw) || len(open) == 0 {
				return fmt.Errorf("property at %#x outside a node or the blob", tokOff)
			}
			size, nameoff := int(be.Uint32(raw[pos:])), int(be.Uint32(raw[pos+4:]))
			if size < 0 || size > len(raw)-pos-8 || nameoff < 0 || nameoff >= len(strs) {
				return fmt.Errorf("property at %#x: length %d or nameoff %d out of bounds", tokOff, size, nameoff)
			}
			n := bytes.IndexByte(strs[nameoff:], 0)
			if n < 0 {
				return fmt.Errorf("property name at strings+%#x not terminated", nameoff)
			}
			b.props = append(b.props, propSpan{
				node: b.nodes[open[len(open)-1]].path, name: string(strs[nameoff : nameoff+n]),
				tok: tokOff, value: pos + 8, size: size,
			})
			pos = align4(pos + 8 + size)
		case tokenEnd:
			return nil
		default:
			return fmt.Errorf("unknown token %#x at %#x", tok, tokOff)
		}
	}
}

func joinPath(parent, name string) string {
	if parent == "/" {
		return "/" + name
	}
	return parent + "/" + name
}

// propPath names a property the way dtc does: /node/prop, /prop at the root.
func propPath(node, name string) string { return joinPath(node, name) }

func align4(n int) int { return (n + 3) &^ 3 }

// node finds a node by absolute path.
func (b *blob) node(path string) (nodeSpan, error) {
	for _, n := range b.nodes {
		if n.path == path {
			return n, nil
		}
	}
	return nodeSpan{}, fmt.Errorf("%s has no node %s: %w", b.what, path, ErrNotApplicable)
}

// prop finds a property of the node at path.
func (b *blob) prop(path, name string) (propSpan, error) {
	for _, p := range b.props {
		if p.node == path && p.name == name {
			return p, nil
		}
	}
	return propSpan{}, fmt.Errorf("%s has no property %s: %w", b.what, propPath(path, name), ErrNotApplicable)
}

// u64 reads an 8-byte little-endian property, as KHO and LUO store them.
func (b *blob) u64(path, name string) (uint64, error) {
	p, err := b.prop(path, name)
	if err != nil {
		return 0, err
	}
	if p.size != 8 {
		return 0, fmt.Errorf("%s %s is %d bytes, not a u64: %w", b.what, propPath(path, name), p.size, ErrNotApplicable)
	}
	return binary.LittleEndian.Uint64(b.raw[p.value:]), nil
}

// at is the physical address of a byte offset in the blob.
func (b *blob) at(off int) uint64 { return b.pa + uint64(off) }

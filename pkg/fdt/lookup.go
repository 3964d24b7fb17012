package fdt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Errno is one of libfdt's error codes (libfdt.h, -FDT_ERR_*), as the
// read-only lookups of a Lookup return them.
type Errno int

// The codes a Lookup returns.
const (
	ErrnoNotFound     Errno = 1  // FDT_ERR_NOTFOUND
	ErrnoBadOffset    Errno = 4  // FDT_ERR_BADOFFSET
	ErrnoTruncated    Errno = 8  // FDT_ERR_TRUNCATED
	ErrnoBadMagic     Errno = 9  // FDT_ERR_BADMAGIC
	ErrnoBadVersion   Errno = 10 // FDT_ERR_BADVERSION
	ErrnoBadStructure Errno = 11 // FDT_ERR_BADSTRUCTURE
	ErrnoAlignment    Errno = 19 // FDT_ERR_ALIGNMENT
)

var errnoNames = map[Errno]string{
	ErrnoNotFound: "FDT_ERR_NOTFOUND", ErrnoBadOffset: "FDT_ERR_BADOFFSET", ErrnoTruncated: "FDT_ERR_TRUNCATED",
	ErrnoBadMagic: "FDT_ERR_BADMAGIC", ErrnoBadVersion: "FDT_ERR_BADVERSION", ErrnoBadStructure: "FDT_ERR_BADSTRUCTURE",
	ErrnoAlignment: "FDT_ERR_ALIGNMENT",
}

func (e Errno) Error() string {
	if n, ok := errnoNames[e]; ok {
		return "fdt: " + n
	}
	return fmt.Sprintf("fdt: FDT_ERR %d", int(e))
}

// Is makes ErrnoNotFound match ErrNotFound.
func (e Errno) Is(target error) bool { return e == ErrnoNotFound && target == ErrNotFound }

// libfdt's version bounds (FDT_FIRST_SUPPORTED_VERSION,
// FDT_LAST_SUPPORTED_VERSION).
const (
	libfdtFirstVersion = 0x02
	libfdtLastVersion  = 0x11
)

// Lookup reads a tree the way libfdt's read-only functions do (fdt.c,
// fdt_ro.c, with no FDT_ASSUME_MASK, as the kernel builds them): after
// fdt_check_header nothing is checked until a lookup walks over it, and a
// lookup stops at the first tag that answers it. A kernel that takes an FDT
// from memory it does not trust (KHO's root in kho_populate and
// kho_retrieve_subtree) meets damage only where its lookups go, where Parse
// refuses the whole tree for it.
//
// Offsets are libfdt's: into the struct block, the root node at 0. Every
// read is bounds-checked: a hostile blob gives an Errno, never a panic.
type Lookup struct {
	b       []byte // the blob, cut to totalsize
	version uint32
}

// NewLookup is fdt_check_header on blob (held at an 8-byte aligned
// address, as the kernel's is). blob is the memory the tree lies in: it
// may be longer than the tree, or shorter than a damaged totalsize.
func NewLookup(blob []byte) (*Lookup, error) {
	be := binary.BigEndian
	if len(blob) < 4 || be.Uint32(blob) != Magic {
		return nil, ErrnoBadMagic
	}
	// Every field fdt_check_header reads lies in the first 40 bytes; a
	// shorter buffer cannot hold what the header claims.
	if len(blob) < headerSize {
		return nil, ErrnoTruncated
	}
	u := func(off int) uint32 { return be.Uint32(blob[off:]) }
	version, last := u(hVersion), u(hLastComp)
	if version < libfdtFirstVersion || last > libfdtLastVersion || version < last {
		return nil, ErrnoBadVersion
	}
	hdr := uint64(headerSize)
	switch {
	case version <= 1:
		hdr = 28
	case version <= 2:
		hdr = 32
	case version <= 16:
		hdr = 36
	}
	total := uint64(u(hTotalSize))
	if total < hdr || total > math.MaxInt32 {
		return nil, ErrnoTruncated
	}
	if u(hOffRsvmap)%8 != 0 || u(hOffStruct)%4 != 0 {
		return nil, ErrnoAlignment
	}
	in := func(off uint64) bool { return off >= hdr && off <= total }
	block := func(base, size uint32) bool { return in(uint64(base)) && in(uint64(base)+uint64(size)) }
	if !in(uint64(u(hOffRsvmap))) {
		return nil, ErrnoTruncated
	}
	if version < 17 {
		if !in(uint64(u(hOffStruct))) {
			return nil, ErrnoTruncated
		}
	} else if !block(u(hOffStruct), u(hSizeStruct)) {
		return nil, ErrnoTruncated
	}
	if !block(u(hOffStrings), u(hSizeStrings)) {
		return nil, ErrnoTruncated
	}
	// libfdt trusts totalsize as the buffer's size: a lookup reads up to
	// it. Past the end of blob (the memory the caller has) reads fail as
	// reads past totalsize do.
	return &Lookup{b: blob[:min(total, uint64(len(blob)))], version: version}, nil
}

func (l *Lookup) u32(off int) uint32 { return binary.BigEndian.Uint32(l.b[off:]) }

// ptr is fdt_offset_ptr: n bytes at struct offset off, inside totalsize
// and, from version 17, inside the struct block; nil otherwise.
func (l *Lookup) ptr(off, n int) []byte {
	if off < 0 || n < 0 {
		return nil
	}
	abs := uint64(off) + uint64(l.u32(hOffStruct))
	if abs+uint64(n) > uint64(len(l.b)) || abs > math.MaxUint32 || abs+uint64(n) > math.MaxUint32 {
		return nil
	}
	if l.version >= 17 && uint64(off)+uint64(n) > uint64(l.u32(hSizeStruct)) {
		return nil
	}
	return l.b[abs : abs+uint64(n)]
}

// nextTag is fdt_next_tag: the tag at off and the next tag's offset, or
// tokenEnd and a negative errno for a premature end or an unknown tag.
func (l *Lookup) nextTag(off int) (tag uint32, next int) {
	p := l.ptr(off, 4)
	if p == nil {
		return tokenEnd, -int(ErrnoTruncated)
	}
	tag = binary.BigEndian.Uint32(p)
	end := off + 4
	switch tag {
	case tokenBeginNode:
		for {
			c := l.ptr(end, 1)
			end++
			if c == nil {
				return tokenEnd, -int(ErrnoBadStructure)
			}
			if c[0] == 0 {
				break
			}
		}
	case tokenProp:
		lp := l.ptr(end, 4)
		if lp == nil {
			return tokenEnd, -int(ErrnoBadStructure)
		}
		n := uint64(binary.BigEndian.Uint32(lp))
		if n+uint64(end) >= math.MaxInt32 {
			return tokenEnd, -int(ErrnoBadStructure)
		}
		end += 8 + int(n)
		if l.version < 0x10 && n >= 8 && (end-int(n))%8 != 0 {
			end += 4
		}
	case tokenEnd, tokenEndNode, tokenNop:
	default:
		return tokenEnd, -int(ErrnoBadStructure)
	}
	if l.ptr(off, end-off) == nil {
		return tokenEnd, -int(ErrnoBadStructure)
	}
	return tag, align4(end)
}

// checkNode is fdt_check_node_offset_: the offset past the node's
// BEGIN_NODE and name.
func (l *Lookup) checkNode(off int) (int, error) {
	if off < 0 || off%4 != 0 {
		return 0, ErrnoBadOffset
	}
	if tag, next := l.nextTag(off); tag == tokenBeginNode {
		return next, nil
	}
	return 0, ErrnoBadOffset
}

// nextNode is fdt_next_node with a depth.
func (l *Lookup) nextNode(off int, depth *int) (int, error) {
	next := 0
	if off >= 0 {
		var err error
		if next, err = l.checkNode(off); err != nil {
			return 0, err
		}
	}
	for {
		off = next
		var tag uint32
		tag, next = l.nextTag(off)
		switch tag {
		case tokenBeginNode:
			*depth++
			return off, nil
		case tokenEndNode:
			if *depth--; *depth < 0 {
				return next, nil
			}
		case tokenEnd:
			// libfdt: a clean end is NOTFOUND, anything else the error
			// it met (its TRUNCATED exception is for a NULL depth).
			if next >= 0 {
				return 0, ErrnoNotFound
			}
			return 0, Errno(-next)
		}
	}
}

// name is fdt_get_name: the node's name without its NUL.
func (l *Lookup) name(off int) ([]byte, error) {
	if _, err := l.checkNode(off); err != nil {
		return nil, err
	}
	// checkNode found the NUL inside the struct block; the padding after
	// it need not be.
	n := 0
	for l.ptr(off+4+n, 1)[0] != 0 {
		n++
	}
	return l.ptr(off+4, n), nil
}

// Subnode is fdt_subnode_offset: the offset of parent's direct subnode
// name ("name" also matches "name@unit" when name has no unit address).
func (l *Lookup) Subnode(parent int, name string) (int, error) {
	depth := 0
	off := parent
	for off >= 0 && depth >= 0 {
		if depth == 1 {
			// fdt_nodename_eq_ on a node fdt_next_node just checked.
			if n, err := l.name(off); err == nil && nameMatches(n, name) {
				return off, nil
			}
		}
		var err error
		if off, err = l.nextNode(off, &depth); err != nil {
			return 0, err
		}
	}
	return 0, ErrnoNotFound
}

// nextProp is nextprop_: the first property tag at or after off, skipping
// NOPs, before the node's first subnode or END_NODE.
func (l *Lookup) nextProp(off int) (int, error) {
	for {
		tag, next := l.nextTag(off)
		switch tag {
		case tokenEnd:
			if next >= 0 {
				return 0, ErrnoBadStructure
			}
			return 0, Errno(-next)
		case tokenProp:
			return off, nil
		case tokenNop:
			off = next
		default:
			return 0, ErrnoNotFound
		}
	}
}

// string is fdt_get_string: the NUL-terminated string at offset off of the
// strings block.
func (l *Lookup) string(off uint32) ([]byte, error) {
	start := uint64(l.u32(hOffStrings)) + uint64(off)
	if int32(off) < 0 || start >= uint64(len(l.b)) || off >= l.u32(hSizeStrings) && l.version >= 17 {
		return nil, ErrnoBadOffset
	}
	n := uint64(len(l.b)) - start
	if l.version >= 17 {
		n = min(n, uint64(l.u32(hSizeStrings)-off))
	}
	s := l.b[start : start+n]
	end := bytes.IndexByte(s, 0)
	if end < 0 {
		return nil, ErrnoTruncated
	}
	return s[:end], nil
}

// Prop is fdt_getprop: the value of node's property name. A property whose
// name cannot be read is passed over, as fdt_string_eq_ does.
func (l *Lookup) Prop(node int, name string) ([]byte, error) {
	first, err := l.checkNode(node)
	if err != nil {
		return nil, err
	}
	off, err := l.nextProp(first)
	for ; err == nil; off, err = l.nextPropAfter(off) {
		// nextTag accepted this property: its 12 bytes are there.
		p := l.ptr(off, 12)
		if s, serr := l.string(binary.BigEndian.Uint32(p[8:])); serr == nil && string(s) == name {
			n := int(binary.BigEndian.Uint32(p[4:]))
			at := off + 12
			if l.version < 0x10 && (off+12)%8 != 0 && n >= 8 {
				at += 4
			}
			return l.ptr(at, n), nil
		}
	}
	return nil, err
}

// nextPropAfter is fdt_next_property_offset.
func (l *Lookup) nextPropAfter(off int) (int, error) {
	if off < 0 || off%4 != 0 {
		return 0, ErrnoBadOffset
	}
	tag, next := l.nextTag(off)
	if tag != tokenProp {
		return 0, ErrnoBadOffset
	}
	return l.nextProp(next)
}

// CheckCompatible is fdt_node_check_compatible: nil when node's compatible
// list holds compatible, ErrNotCompatible when it does not, else the
// lookup's error.
func (l *Lookup) CheckCompatible(node int, compatible string) error {
	v, err := l.Prop(node, "compatible")
	if err != nil {
		return err
	}
	// fdt_stringlist_contains compares len+1 bytes: when the list's last
	// entry is the compatible without its NUL, the byte after the value
	// (padding, or the next tag's first byte) decides.
	for len(v) >= len(compatible) {
		if w := v[:min(len(compatible)+1, cap(v))]; len(w) > len(compatible) && string(w[:len(compatible)]) == compatible && w[len(compatible)] == 0 {
			return nil
		}
		i := bytes.IndexByte(v, 0)
		if i < 0 {
			break
		}
		v = v[i+1:]
	}
	return ErrNotCompatible
}

// ErrNotCompatible is CheckCompatible's answer for a node that is not.
var ErrNotCompatible = errors.New("fdt: node is not compatible")

package fdt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Editor errors wrap one of these (besides ErrNoSpace, ErrBadName and
// ErrNotFound).
var (
	// ErrExists: fdt_add_subnode's -FDT_ERR_EXISTS.
	ErrExists = errors.New("fdt: node exists")
	// ErrBadLayout: the buffer does not hold a tree the read-write
	// functions accept (libfdt's -FDT_ERR_BADLAYOUT, BADSTRUCTURE,
	// BADOFFSET, TRUNCATED).
	ErrBadLayout = errors.New("fdt: blob layout not editable in place")
)

// packedRsvmapAt is where fdt_packblocks_ puts the reservation map: the
// header rounded up to 8 bytes, not to 16 as fdt_create does.
const packedRsvmapAt = 40

// FinishInto writes the tree the way fdt_create(buf, len(buf)) and the
// same calls up to fdt_finish leave buf: zeroed, the finished blob at the
// start and, because the sequential writer grows the strings block down
// from the buffer's end and fdt_finish only copies it behind the struct
// block, the strings block also at the very end of buf. The kernel's KHO
// root is built like that in its page before it is edited in place.
func (b *Builder) FinishInto(buf []byte) error {
	if b.err == nil && len(buf) != b.limit {
		return b.fail(fmt.Errorf("fdt: FinishInto a %d-byte buffer, builder capacity %d: %w", len(buf), b.limit, ErrBadState))
	}
	strs := len(b.revStrings)
	blob, err := b.Finish()
	if err != nil {
		return err
	}
	if len(blob) > len(buf) {
		return fmt.Errorf("fdt: %d-byte blob in a %d-byte buffer: %w", len(blob), len(buf), ErrNoSpace)
	}
	clear(buf)
	copy(buf[len(buf)-strs:], blob[len(blob)-strs:])
	copy(buf, blob)
	return nil
}

// Editor edits a tree inside a fixed buffer the way libfdt's read-write
// functions (fdt_open_into, fdt_add_subnode, fdt_setprop, fdt_del_node,
// fdt_pack) edit it, byte for byte, stale bytes left by their memmoves
// included: the kernel edits its KHO root FDT in place in one page, and
// kho-sim reproduces that page exactly.
//
// Node offsets are libfdt's: offsets into the struct block, the root at 0.
// The buffer may hold anything; every read is bounds-checked and a bad tree
// is an error, never a panic or a write outside the buffer.
type Editor struct {
	buf []byte
}

// OpenInto models fdt_open_into(buf, buf, len(buf)) on a tree already at
// the start of buf: it must be in the order libfdt writes (header,
// reservation map, struct block, strings block), which every tree
// Builder, FinishInto and Pack produce. The tree's totalsize becomes
// len(buf), the room the edits may grow into.
func OpenInto(buf []byte) (*Editor, error) {
	e, err := Open(buf)
	if err != nil {
		return nil, err
	}
	e.put32(hTotalSize, uint32(len(buf)))
	return e, nil
}

// Open checks a tree at the start of buf as OpenInto does but leaves it
// untouched, for reads and same-length writes into Prop's slice, as the
// kernel's fdt_getprop_w on a packed tree. Edits that grow the tree fail
// with ErrNoSpace: its totalsize stays.
func Open(buf []byte) (*Editor, error) {
	e := &Editor{buf: buf}
	if len(buf) < headerSize || len(buf) > maxInt32 {
		return nil, fmt.Errorf("fdt: open %d-byte buffer: %w", len(buf), ErrBadLayout)
	}
	if e.u32(hMagic) != Magic || e.u32(hVersion) < 17 {
		return nil, fmt.Errorf("fdt: open: magic %#x version %d: %w", e.u32(hMagic), e.u32(hVersion), ErrBadLayout)
	}
	rsvSize, err := e.rsvmapSize()
	if err != nil {
		return nil, err
	}
	if err := e.checkLayout(rsvSize, int(e.u32(hTotalSize))); err != nil {
		return nil, err
	}
	return e, nil
}

const maxInt32 = 1<<31 - 1

func (e *Editor) u32(off int) uint32      { return binary.BigEndian.Uint32(e.buf[off:]) }
func (e *Editor) put32(off int, v uint32) { binary.BigEndian.PutUint32(e.buf[off:], v) }
func (e *Editor) offStruct() int          { return int(e.u32(hOffStruct)) }
func (e *Editor) sizeStruct() int         { return int(e.u32(hSizeStruct)) }
func (e *Editor) offStrings() int         { return int(e.u32(hOffStrings)) }
func (e *Editor) sizeStrings() int        { return int(e.u32(hSizeStrings)) }

// dataSize is fdt_data_size_: where the strings block ends.
func (e *Editor) dataSize() int { return e.offStrings() + e.sizeStrings() }

// rsvmapSize is the reservation map's size with its terminating entry.
func (e *Editor) rsvmapSize() (int, error) {
	off := int(e.u32(hOffRsvmap))
	for n := 0; n <= MaxReservations; n++ {
		p := off + n*reserveSize
		if p < off || p+reserveSize > len(e.buf) {
			return 0, fmt.Errorf("fdt: reservation map at %#x runs past the buffer: %w", off, ErrBadLayout)
		}
		if binary.BigEndian.Uint64(e.buf[p:]) == 0 && binary.BigEndian.Uint64(e.buf[p+8:]) == 0 {
			return (n + 1) * reserveSize, nil
		}
	}
	return 0, fmt.Errorf("fdt: more than %d reservations: %w", MaxReservations, ErrBadLayout)
}

// checkLayout is fdt_blocks_misordered_ plus the bounds libfdt takes from
// a well-formed header: blocks in order, inside total bytes.
func (e *Editor) checkLayout(rsvSize, total int) error {
	rsv, st, ss, str, strs := int(e.u32(hOffRsvmap)), e.offStruct(), e.sizeStruct(), e.offStrings(), e.sizeStrings()
	switch {
	case total > len(e.buf) || total < headerSize:
		return fmt.Errorf("fdt: totalsize %d in a %d-byte buffer: %w", total, len(e.buf), ErrBadLayout)
	case rsv < packedRsvmapAt, st < rsv+rsvSize, str < st+ss, total < str+strs, ss < 4:
		return fmt.Errorf("fdt: blocks out of order (rsvmap %#x+%#x, struct %#x+%#x, strings %#x+%#x, total %#x): %w",
			rsv, rsvSize, st, ss, str, strs, total, ErrBadLayout)
	}
	return nil
}

// ptr is fdt_offset_ptr: n bytes at struct offset off, inside the struct
// block, or nil.
func (e *Editor) ptr(off, n int) []byte {
	if off < 0 || n < 0 || off+n > e.sizeStruct() {
		return nil
	}
	abs := e.offStruct() + off
	if abs+n > len(e.buf) {
		return nil
	}
	return e.buf[abs : abs+n]
}

// nextTag is fdt_next_tag: the tag at off and the offset of the next one.
func (e *Editor) nextTag(off int) (tag uint32, next int, err error) {
	p := e.ptr(off, 4)
	if p == nil {
		return 0, 0, fmt.Errorf("fdt: tag at %#x past the struct block: %w", off, ErrBadLayout)
	}
	tag = binary.BigEndian.Uint32(p)
	end := off + 4
	switch tag {
	case tokenBeginNode:
		rest := e.ptr(end, e.sizeStruct()-end)
		n := bytes.IndexByte(rest, 0)
		if n < 0 {
			return 0, 0, fmt.Errorf("fdt: node name at %#x unterminated: %w", end, ErrBadLayout)
		}
		end += n + 1
	case tokenProp:
		lp := e.ptr(end, 8)
		if lp == nil {
			return 0, 0, fmt.Errorf("fdt: property at %#x truncated: %w", off, ErrBadLayout)
		}
		end += 8 + int(binary.BigEndian.Uint32(lp))
		if e.ptr(off, end-off) == nil {
			return 0, 0, fmt.Errorf("fdt: property at %#x runs past the struct block: %w", off, ErrBadLayout)
		}
	case tokenEndNode, tokenNop, tokenEnd:
	default:
		return 0, 0, fmt.Errorf("fdt: unknown tag %#x at %#x: %w", tag, off, ErrBadLayout)
	}
	return tag, align4(end), nil
}

// beginNode checks that off is a node (fdt_check_node_offset_) and returns
// the offset just past its name, where its first property is.
func (e *Editor) beginNode(off int) (int, error) {
	if off < 0 || off%4 != 0 {
		return 0, fmt.Errorf("fdt: node offset %#x: %w", off, ErrBadLayout)
	}
	tag, next, err := e.nextTag(off)
	if err != nil {
		return 0, err
	}
	if tag != tokenBeginNode {
		return 0, fmt.Errorf("fdt: offset %#x is tag %#x, not a node: %w", off, tag, ErrBadLayout)
	}
	return next, nil
}

// walkProps visits node's properties in order, skipping NOPs, until stop
// returns true for one; it returns that property's offset, or the offset of
// the first tag after the properties (the first subnode or the END_NODE).
func (e *Editor) walkProps(node int, stop func(prop int) bool) (int, error) {
	off, err := e.beginNode(node)
	if err != nil {
		return 0, err
	}
	for {
		tag, next, err := e.nextTag(off)
		if err != nil {
			return 0, err
		}
		switch tag {
		case tokenNop:
		case tokenProp:
			if stop != nil && stop(off) {
				return off, nil
			}
		default:
			return off, nil
		}
		off = next
	}
}

// afterProps is where fdt_add_subnode puts a new node: right after its
// parent's properties.
func (e *Editor) afterProps(node int) (int, error) { return e.walkProps(node, nil) }

// nodeEnd is fdt_node_end_offset_: the offset just past the node's
// END_NODE.
func (e *Editor) nodeEnd(node int) (int, error) {
	off, err := e.beginNode(node)
	if err != nil {
		return 0, err
	}
	for depth := 1; ; {
		tag, next, err := e.nextTag(off)
		if err != nil {
			return 0, err
		}
		switch tag {
		case tokenBeginNode:
			if depth++; depth > MaxDepth {
				return 0, fmt.Errorf("fdt: node at %#x nested deeper than %d: %w", node, MaxDepth, ErrBadLayout)
			}
		case tokenEndNode:
			if depth--; depth == 0 {
				return next, nil
			}
		case tokenEnd:
			return 0, fmt.Errorf("fdt: node at %#x has no END_NODE: %w", node, ErrBadLayout)
		}
		off = next
	}
}

// Subnodes returns the offsets of node's direct subnodes, in order
// (fdt_first_subnode, fdt_next_subnode).
func (e *Editor) Subnodes(node int) ([]int, error) {
	off, err := e.afterProps(node)
	if err != nil {
		return nil, err
	}
	var subs []int
	for {
		tag, _, err := e.nextTag(off)
		if err != nil {
			return nil, err
		}
		switch tag {
		case tokenBeginNode:
			if len(subs) >= MaxNodes {
				return nil, fmt.Errorf("fdt: more than %d subnodes: %w", MaxNodes, ErrBadLayout)
			}
			subs = append(subs, off)
			if off, err = e.nodeEnd(off); err != nil {
				return nil, err
			}
		case tokenNop:
			_, off, _ = e.nextTag(off)
		default: // the parent's END_NODE (or a malformed tag)
			return subs, nil
		}
	}
}

// name returns the node's name as stored, without its NUL.
func (e *Editor) name(node int) ([]byte, error) {
	next, err := e.beginNode(node)
	if err != nil {
		return nil, err
	}
	n := e.ptr(node+4, next-node-4)
	return n[:bytes.IndexByte(n, 0)], nil
}

// nameMatches is fdt_nodename_eq_: "name" also matches a node "name@unit"
// when name itself has no unit address.
func nameMatches(stored []byte, name string) bool {
	if !bytes.HasPrefix(stored, []byte(name)) {
		return false
	}
	rest := stored[len(name):]
	return len(rest) == 0 || (rest[0] == '@' && !bytes.Contains([]byte(name), []byte("@")))
}

// Subnode is fdt_subnode_offset: the offset of parent's subnode name.
func (e *Editor) Subnode(parent int, name string) (int, error) {
	subs, err := e.Subnodes(parent)
	if err != nil {
		return 0, err
	}
	for _, s := range subs {
		n, err := e.name(s)
		if err != nil {
			return 0, err
		}
		if nameMatches(n, name) {
			return s, nil
		}
	}
	return 0, fmt.Errorf("fdt: no node %q: %w", name, ErrNotFound)
}

// prop finds node's property name (fdt_get_property_w): the offset of its
// tag, or -1.
func (e *Editor) prop(node int, name string) (int, error) {
	found := false
	off, err := e.walkProps(node, func(p int) bool {
		found = e.stringAt(int(binary.BigEndian.Uint32(e.ptr(p+8, 4)))) == name
		return found
	})
	if err != nil || !found {
		return -1, err
	}
	return off, nil
}

// stringAt is the NUL-terminated string at offset off of the strings
// block, "" when off is outside it or the string runs past it.
func (e *Editor) stringAt(off int) string {
	if off < 0 || off >= e.sizeStrings() {
		return ""
	}
	start := e.offStrings() + off
	end := min(e.offStrings()+e.sizeStrings(), len(e.buf))
	if start >= end {
		return ""
	}
	n := bytes.IndexByte(e.buf[start:end], 0)
	if n < 0 {
		return ""
	}
	return string(e.buf[start : start+n])
}

// Prop returns the value of node's property name, aliasing the buffer
// (fdt_getprop_w): writing into it changes the tree in place, as KHO
// updates its memory map's address.
func (e *Editor) Prop(node int, name string) ([]byte, error) {
	off, err := e.prop(node, name)
	if err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, fmt.Errorf("fdt: no property %q: %w", name, ErrNotFound)
	}
	n := int(binary.BigEndian.Uint32(e.ptr(off+4, 4)))
	return e.ptr(off+12, n), nil
}

// splice is fdt_splice_: it makes the oldLen bytes at absolute offset at
// newLen bytes long by moving everything behind them up to the end of the
// strings block. The bytes a move uncovers keep what they held.
func (e *Editor) splice(at, oldLen, newLen int) error {
	dsize := e.dataSize()
	if at < 0 || oldLen < 0 || at+oldLen > dsize {
		return fmt.Errorf("fdt: splice at %#x of %d bytes past the data (%d): %w", at, oldLen, dsize, ErrBadLayout)
	}
	if dsize-oldLen+newLen > int(e.u32(hTotalSize)) {
		return fmt.Errorf("fdt: %d more bytes do not fit in %d: %w", newLen-oldLen, e.u32(hTotalSize), ErrNoSpace)
	}
	copy(e.buf[at+newLen:], e.buf[at+oldLen:dsize])
	return nil
}

// spliceStruct is fdt_splice_struct_ at struct offset off.
func (e *Editor) spliceStruct(off, oldLen, newLen int) error {
	if err := e.splice(e.offStruct()+off, oldLen, newLen); err != nil {
		return err
	}
	delta := newLen - oldLen
	e.put32(hSizeStruct, uint32(e.sizeStruct()+delta))
	e.put32(hOffStrings, uint32(e.offStrings()+delta))
	return nil
}

// findAddString is the read-write fdt_find_add_string_: the first place
// the strings block holds name and its NUL (possibly the tail of a longer
// string), or name appended to the block.
func (e *Editor) findAddString(name string) (off int, added bool, err error) {
	key := append([]byte(name), 0)
	strs := e.buf[e.offStrings():e.dataSize()]
	if i := bytes.Index(strs, key); i >= 0 {
		return i, false, nil
	}
	end := e.dataSize()
	if err := e.splice(end, 0, len(key)); err != nil {
		return 0, false, err
	}
	copy(e.buf[end:], key)
	e.put32(hSizeStrings, uint32(e.sizeStrings()+len(key)))
	return len(strs), true, nil
}

// AddSubnode is fdt_add_subnode: a new empty node name under parent,
// placed right after parent's properties, so before any subnode added
// earlier. It returns the new node's offset.
func (e *Editor) AddSubnode(parent int, name string) (int, error) {
	if why := validName(name, true); why != "" {
		return 0, fmt.Errorf("fdt: add node: %s: %w", why, ErrBadName)
	}
	if _, err := e.Subnode(parent, name); err == nil {
		return 0, fmt.Errorf("fdt: add node %q: %w", name, ErrExists)
	} else if !errors.Is(err, ErrNotFound) {
		return 0, err
	}
	off, err := e.afterProps(parent)
	if err != nil {
		return 0, err
	}
	nameLen := align4(len(name) + 1)
	nodeLen := 4 + nameLen + 4
	if err := e.spliceStruct(off, 0, nodeLen); err != nil {
		return 0, fmt.Errorf("fdt: add node %q: %w", name, err)
	}
	p := e.ptr(off, nodeLen)
	binary.BigEndian.PutUint32(p, tokenBeginNode)
	clear(p[4 : 4+nameLen])
	copy(p[4:], name)
	binary.BigEndian.PutUint32(p[nodeLen-4:], tokenEndNode)
	return off, nil
}

// SetProp is fdt_setprop: an existing property is resized in place, a new
// one goes first among node's properties. The padding after a value keeps
// whatever bytes were there, as in libfdt.
func (e *Editor) SetProp(node int, name string, value []byte) error {
	if why := validName(name, false); why != "" {
		return fmt.Errorf("fdt: set property: %s: %w", why, ErrBadName)
	}
	off, err := e.prop(node, name)
	if err != nil {
		return err
	}
	if off >= 0 { // fdt_resize_property_
		old := int(binary.BigEndian.Uint32(e.ptr(off+4, 4)))
		if err := e.spliceStruct(off+12, align4(old), align4(len(value))); err != nil {
			return fmt.Errorf("fdt: set property %q: %w", name, err)
		}
	} else { // fdt_add_property_
		if off, err = e.beginNode(node); err != nil {
			return err
		}
		nameOff, added, err := e.findAddString(name)
		if err != nil {
			return fmt.Errorf("fdt: set property %q: %w", name, err)
		}
		if err := e.spliceStruct(off, 0, 12+align4(len(value))); err != nil {
			if added { // fdt_del_last_string_
				e.put32(hSizeStrings, uint32(e.sizeStrings()-len(name)-1))
			}
			return fmt.Errorf("fdt: set property %q: %w", name, err)
		}
		p := e.ptr(off, 12)
		binary.BigEndian.PutUint32(p, tokenProp)
		binary.BigEndian.PutUint32(p[8:], uint32(nameOff))
	}
	binary.BigEndian.PutUint32(e.ptr(off+4, 4), uint32(len(value)))
	copy(e.ptr(off+12, len(value)), value)
	return nil
}

// DelNode is fdt_del_node: the node and everything under it go (the root
// too, as in libfdt); the bytes at the end of the data that the move
// uncovers stay as they were.
func (e *Editor) DelNode(node int) error {
	end, err := e.nodeEnd(node)
	if err != nil {
		return err
	}
	return e.spliceStruct(node, end-node, 0)
}

// Pack is fdt_pack: the blocks move down behind the header (the
// reservation map to offset 40) and totalsize shrinks to the data. It
// returns the packed tree, aliasing the buffer.
func (e *Editor) Pack() ([]byte, error) {
	rsvSize, err := e.rsvmapSize()
	if err != nil {
		return nil, err
	}
	if err := e.checkLayout(rsvSize, int(e.u32(hTotalSize))); err != nil {
		return nil, err
	}
	rsv, st, ss, str, strs := int(e.u32(hOffRsvmap)), e.offStruct(), e.sizeStruct(), e.offStrings(), e.sizeStrings()
	newStruct := packedRsvmapAt + rsvSize
	newStrings := newStruct + ss
	copy(e.buf[packedRsvmapAt:], e.buf[rsv:rsv+rsvSize])
	e.put32(hOffRsvmap, packedRsvmapAt)
	copy(e.buf[newStruct:], e.buf[st:st+ss])
	e.put32(hOffStruct, uint32(newStruct))
	copy(e.buf[newStrings:], e.buf[str:str+strs])
	e.put32(hOffStrings, uint32(newStrings))
	e.put32(hTotalSize, uint32(newStrings+strs))
	return e.buf[:newStrings+strs], nil
}

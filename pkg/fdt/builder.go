package fdt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
)

// Builder builds a blob sequentially, laid out byte for byte as libfdt's
// sequential-write API lays it out for the same calls: fdt_create(buf,
// capacity), fdt_add_reservemap_entry per AddReservation,
// fdt_finish_reservemap, then fdt_begin_node/fdt_property/fdt_end_node and
// fdt_finish. Errors are sticky: after the first, every call returns it.
type Builder struct {
	limit      int // largest totalsize allowed
	reserved   []Reservation
	structBlk  []byte
	revStrings []byte // the strings block, byte-reversed; see stringOffset
	nameFixups []int  // offsets in structBlk of nameoffs still relative to the strings block's end
	open       []buildFrame
	rootDone   bool
	nodes      int
	props      int
	err        error
}

type buildFrame struct {
	props, children nameSet
	hasChild        bool
}

// NewBuilder returns a Builder whose blob may grow to capacity bytes (the
// buffer size passed to fdt_create); 0 means no limit beyond the format's.
func NewBuilder(capacity int) *Builder {
	b := &Builder{limit: capacity}
	switch {
	case capacity < 0:
		b.err = fmt.Errorf("fdt: capacity %d: %w", capacity, ErrNoSpace)
	case capacity == 0 || capacity > math.MaxInt32: // libfdt's sizes are ints
		b.limit = math.MaxInt32
	}
	return b
}

// size is the totalsize the blob would have if finished now.
func (b *Builder) size() int {
	return rsvmapOffset + reserveSize*(len(b.reserved)+1) + len(b.structBlk) + len(b.revStrings)
}

func (b *Builder) fail(err error) error {
	b.err = err
	return err
}

// need fails unless grow more bytes fit within the capacity.
func (b *Builder) need(what, name string, grow int) error {
	if size := b.size() + grow; size > b.limit {
		if name != "" {
			what += fmt.Sprintf(" %q", name)
		}
		return b.fail(fmt.Errorf("fdt: %s needs totalsize %d, capacity %d: %w", what, size, b.limit, ErrNoSpace))
	}
	return nil
}

func (b *Builder) badState(format string, args ...any) error {
	return b.fail(fmt.Errorf("fdt: %s: %w", fmt.Sprintf(format, args...), ErrBadState))
}

// AddReservation adds a memory reservation map entry; only before the root node.
func (b *Builder) AddReservation(address, size uint64) error {
	if b.err != nil {
		return b.err
	}
	if len(b.structBlk) != 0 {
		return b.badState("reservation %#x+%#x added after the root node began", address, size)
	}
	if len(b.reserved) >= MaxReservations {
		return b.badState("more than %d reservations", MaxReservations)
	}
	if err := b.need("reservation", "", reserveSize); err != nil {
		return err
	}
	b.reserved = append(b.reserved, Reservation{address, size})
	return nil
}

// BeginNode opens a node; the root is BeginNode("").
func (b *Builder) BeginNode(name string) error {
	if b.err != nil {
		return b.err
	}
	switch {
	case b.rootDone:
		return b.badState("node %q begun after the root node ended", name)
	case len(b.open) == 0 && name != "":
		return b.fail(fmt.Errorf("fdt: root node named %q, want \"\": %w", name, ErrBadName))
	case len(b.open) >= MaxDepth:
		return b.badState("node %q nested deeper than %d", name, MaxDepth)
	case b.nodes >= MaxNodes:
		return b.badState("more than %d nodes", MaxNodes)
	}
	if len(b.open) > 0 {
		if why := validName(name, true); why != "" {
			return b.fail(fmt.Errorf("fdt: node: %s: %w", why, ErrBadName))
		}
		parent := &b.open[len(b.open)-1]
		if !parent.children.add(name) {
			return b.fail(fmt.Errorf("fdt: duplicate node %q: %w", name, ErrBadName))
		}
		parent.hasChild = true
	}
	if err := b.need("node", name, 4+align4(len(name)+1)); err != nil {
		return err
	}
	b.structBlk = binary.BigEndian.AppendUint32(b.structBlk, tokenBeginNode)
	b.structBlk = append(append(b.structBlk, name...), 0)
	b.structBlk = appendZeros(b.structBlk, len(name)+1)
	b.open = append(b.open, buildFrame{})
	b.nodes++
	return nil
}

// appendZeros appends the padding after an n-byte item so the next token
// starts 4-byte aligned.
func appendZeros(buf []byte, n int) []byte {
	return append(buf, make([]byte, align4(n)-n)...)
}

func align4(n int) int { return (n + 3) &^ 3 }

// Property adds a property to the innermost open node, before its subnodes.
func (b *Builder) Property(name string, value []byte) error {
	if b.err != nil {
		return b.err
	}
	if len(b.open) == 0 {
		return b.badState("property %q outside any node", name)
	}
	top := &b.open[len(b.open)-1]
	switch {
	case top.hasChild:
		return b.badState("property %q after a subnode", name)
	case b.props >= MaxProperties:
		return b.badState("more than %d properties", MaxProperties)
	}
	if why := validName(name, false); why != "" {
		return b.fail(fmt.Errorf("fdt: property: %s: %w", why, ErrBadName))
	}
	if !top.props.add(name) {
		return b.fail(fmt.Errorf("fdt: duplicate property %q: %w", name, ErrBadName))
	}
	key, fromEnd := b.stringOffset(name)
	if err := b.need("property", name, 12+align4(len(value))+len(key)); err != nil {
		return err
	}
	b.revStrings = append(b.revStrings, key...)
	b.structBlk = binary.BigEndian.AppendUint32(b.structBlk, tokenProp)
	b.structBlk = binary.BigEndian.AppendUint32(b.structBlk, uint32(len(value)))
	b.nameFixups = append(b.nameFixups, len(b.structBlk))
	b.structBlk = binary.BigEndian.AppendUint32(b.structBlk, uint32(fromEnd))
	b.structBlk = append(b.structBlk, value...)
	b.structBlk = appendZeros(b.structBlk, len(value))
	b.props++
	return nil
}

// stringOffset finds name in the strings block the way libfdt's
// fdt_find_add_string_ does and returns the bytes to add to revStrings (none
// if found) and the distance of the name's start from the block's end.
//
// libfdt grows the block downward from the buffer's end and searches it from
// its lowest address for name+NUL, so the newest string wins and a name may be
// the tail of a longer one ("ible" inside "compatible"); fdt_finish then
// moves the block behind the struct block unchanged. Keeping the block
// byte-reversed turns "grow downward" into append and "lowest address" into
// the last match of NUL+reverse(name).
func (b *Builder) stringOffset(name string) (key []byte, fromEnd int) {
	key = make([]byte, len(name)+1)
	for i := 0; i < len(name); i++ {
		key[len(name)-i] = name[i]
	}
	if r := bytes.LastIndex(b.revStrings, key); r >= 0 {
		return nil, r + len(key)
	}
	return key, len(b.revStrings) + len(key)
}

// PropertyString adds a property holding value and a terminating NUL.
func (b *Builder) PropertyString(name, value string) error {
	if b.err == nil && strings.IndexByte(value, 0) >= 0 {
		return b.fail(fmt.Errorf("fdt: property %q: string value contains NUL: %w", name, ErrBadValue))
	}
	return b.Property(name, append([]byte(value), 0))
}

// PropertyU64 adds an 8-byte little-endian property, as KHO stores a u64.
func (b *Builder) PropertyU64(name string, v uint64) error {
	return b.Property(name, binary.LittleEndian.AppendUint64(nil, v))
}

// PropertyU32 adds a 4-byte little-endian property. Unlike fdt_property_u32
// (a big-endian cell) this matches the kernel writing a native u32 with
// fdt_property(fdt, name, &v, sizeof(v)), as KHO/LUO do on x86-64.
func (b *Builder) PropertyU32(name string, v uint32) error {
	return b.Property(name, binary.LittleEndian.AppendUint32(nil, v))
}

// EndNode closes the innermost open node.
func (b *Builder) EndNode() error {
	if b.err != nil {
		return b.err
	}
	if len(b.open) == 0 {
		return b.badState("EndNode without an open node")
	}
	if err := b.need("end of node", "", 4); err != nil {
		return err
	}
	b.structBlk = binary.BigEndian.AppendUint32(b.structBlk, tokenEndNode)
	b.open = b.open[:len(b.open)-1]
	b.rootDone = len(b.open) == 0
	return nil
}

// Finish terminates the struct block and returns the blob, exactly totalsize
// bytes long. The Builder cannot be used afterwards.
func (b *Builder) Finish() ([]byte, error) {
	if b.err != nil {
		return nil, b.err
	}
	switch {
	case len(b.open) > 0:
		return nil, b.badState("Finish with %d nodes open", len(b.open))
	case !b.rootDone:
		return nil, b.badState("Finish without a root node")
	}
	if err := b.need("FDT_END", "", 4); err != nil {
		return nil, err
	}
	b.structBlk = binary.BigEndian.AppendUint32(b.structBlk, tokenEnd)
	offStruct := rsvmapOffset + reserveSize*(len(b.reserved)+1)
	offStrings := offStruct + len(b.structBlk)
	total := offStrings + len(b.revStrings)

	blob := make([]byte, total)
	be := binary.BigEndian
	for i, v := range []int{Magic, total, offStruct, offStrings, rsvmapOffset,
		Version, LastCompVersion, 0, len(b.revStrings), len(b.structBlk)} {
		be.PutUint32(blob[4*i:], uint32(v))
	}
	for i, r := range b.reserved {
		be.PutUint64(blob[rsvmapOffset+reserveSize*i:], r.Address)
		be.PutUint64(blob[rsvmapOffset+reserveSize*i+8:], r.Size)
	}
	copy(blob[offStruct:], b.structBlk)
	for _, fix := range b.nameFixups { // fdt_finish's nameoff correction
		p := blob[offStruct+fix:]
		be.PutUint32(p, uint32(len(b.revStrings))-be.Uint32(p))
	}
	strs := blob[offStrings:]
	for i, c := range b.revStrings {
		strs[len(strs)-1-i] = c
	}
	b.err = fmt.Errorf("fdt: builder already finished: %w", ErrBadState)
	return blob, nil
}

// Encode builds t's reservations and nodes with a Builder of unlimited
// capacity and sets boot_cpuid_phys afterwards, as fdt_set_boot_cpuid_phys
// would. Version is always 17.
func Encode(t *Tree) ([]byte, error) {
	if t == nil || t.Root == nil {
		return nil, fmt.Errorf("fdt: encode: tree has no root: %w", ErrBadState)
	}
	b := NewBuilder(0)
	for _, r := range t.Reserved {
		b.AddReservation(r.Address, r.Size)
	}
	var walk func(n *Node)
	walk = func(n *Node) {
		if b.BeginNode(n.Name) != nil { // stops at MaxDepth, even on a cyclic tree
			return
		}
		for _, p := range n.Props {
			b.Property(p.Name, p.Value)
		}
		for _, c := range n.Children {
			walk(c)
		}
		b.EndNode()
	}
	walk(t.Root) // errors are sticky: Finish reports the first
	blob, err := b.Finish()
	if err != nil {
		return nil, err
	}
	binary.BigEndian.PutUint32(blob[hBootCPUID:], t.BootCPUID)
	return blob, nil
}

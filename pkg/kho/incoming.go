package kho

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/pkg/fdt"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// Block is one preserved block: 2^Order pages starting at PA.
type Block struct {
	PA    uint64
	Order uint
}

// Size is the block's length in bytes.
func (b Block) Size() uint64 { return physmem.PageSize << b.Order }

// End is the first address after the block.
func (b Block) End() uint64 { return b.PA + b.Size() }

// ErrNotPreserved means the previous kernel's memory map does not list a page
// that something asked to use.
var ErrNotPreserved = errors.New("page not in the preserved-memory map")

// Incoming is what a booting kernel learns from the previous one's KHO
// handover (kho_populate and kho_mem_deserialize), read from untrusted
// memory and checked.
type Incoming struct {
	mem      Memory
	rootPA   uint64
	rootSize uint64
	root     *fdt.Tree
	blocks   []Block  // sorted by PA, non-overlapping
	mapPages []uint64 // the memory map's own pages: chunks and bitmaps, or radix nodes
	format   string
}

// RootBodyDamageAction is what a kernel does with a root FDT kho-sim's
// strict parser refuses but whose header, compatible and memory map the
// kernel's own lookups find: it takes the handover anyway (observed on the
// real 7.2 kernel). What its later lookups of the children meet is
// RootDamage.Subtree's.
const RootBodyDamageAction = "the kernel takes the handover anyway: kho_populate checks only the FDT header, the root's compatible and its memory map, and libfdt trips on damage only in a lookup that reaches it"

// RootDamage is ReadIncoming's error for such a root: kho-sim reads
// nothing past it, but the kernel goes on, and Subtree answers what each of
// its kho_retrieve_subtree calls would.
type RootDamage struct {
	PA   uint64
	Err  error // what kho-sim's strict parser found
	look *fdt.Lookup
	v4   bool
}

func (d *RootDamage) Error() string {
	return fmt.Sprintf("kho: root FDT at %#x: %v (%s)", d.PA, d.Err, RootBodyDamageAction)
}

func (d *RootDamage) Unwrap() error { return d.Err }

// Subtree is kho_retrieve_subtree on the damaged root, through libfdt's
// lookups (fdt.Lookup): ENOENT when the lookup of the child fails for any
// reason, EINVAL when its address (kho-v1 "fdt", kho-v4 "preserved-data")
// or kho-v4's blob-size is not found as a u64.
func (d *RootDamage) Subtree(name string) (pa, size uint64, err error) {
	off, err := d.look.Subnode(0, name)
	if err != nil {
		return 0, 0, fmt.Errorf("kho: subtree %q: %v: %w", name, err, unix.ENOENT)
	}
	return subtreeProps(name, d.v4, func(prop string) (uint64, error) {
		v, err := d.look.Prop(off, prop)
		if err == nil && len(v) != 8 {
			err = fmt.Errorf("%d bytes, want 8", len(v))
		}
		if err != nil {
			return 0, fmt.Errorf("%s: %w", prop, err)
		}
		return binary.LittleEndian.Uint64(v), nil
	})
}

// rootDamage says what the kernel does with a root FDT the strict parser
// refused (err), as kho_populate and kho_get_mem_map_phys read it: libfdt's
// fdt_check_header on the mapped page, fdt_node_check_compatible of the
// root, and an 8-byte non-zero preserved-memory-map. Anything short of
// that disables KHO revival; past it the kernel takes the handover
// (*RootDamage).
func rootDamage(r Memory, rootPA uint64, err error) error {
	page, rerr := r.Bytes(rootPA, physmem.PageSize)
	if rerr != nil {
		if page, rerr = r.Bytes(rootPA, 40); rerr != nil {
			return fmt.Errorf("kho: root FDT at %#x: %w (the kernel disables KHO revival)", rootPA, err)
		}
	}
	look, lerr := fdt.NewLookup(page)
	if lerr != nil {
		return fmt.Errorf("kho: root FDT at %#x: %w (the kernel disables KHO revival: fdt_check_header: %v)", rootPA, err, lerr)
	}
	d := &RootDamage{PA: rootPA, Err: err, look: look}
	switch {
	case look.CheckCompatible(0, CompatibleV4) == nil:
		d.v4 = true
	case look.CheckCompatible(0, Compatible) == nil:
	default:
		return fmt.Errorf("kho: root FDT at %#x: %w (the kernel disables KHO revival: the root is neither %q nor %q to libfdt)", rootPA, err, CompatibleV4, Compatible)
	}
	if v, merr := look.Prop(0, PropMemoryMap); merr != nil || len(v) != 8 || binary.LittleEndian.Uint64(v) == 0 {
		return fmt.Errorf("kho: root FDT at %#x: %w (the kernel disables KHO revival: failed to get preserved memory map)", rootPA, err)
	}
	return d
}

// MaxFDTSize bounds the root FDT and every child's FDT or blob that the
// incoming side reads (the kernel writes the root in one page; the bound
// keeps hostile sizes from claiming the region).
const MaxFDTSize = 1 << 20

// ReadIncoming validates the KHO root FDT at rootPA and the memory map it
// points to, in whichever format the root's compatible names: "kho-v1"
// (Linux 7.0, chunks of bitmaps) or "kho-v4" (Linux 7.2, a radix tree). Each
// check mirrors one the kernel of that format makes (fdt_check_header, its
// compatible, a non-zero map address) plus those the kernel omits because it
// trusts its predecessor: every chunk, node, bitmap and preserved block must
// lie inside the region, chunk lists must end, a tree must be a tree, and
// counts must fit. Which format the reading kernel expects is the caller's
// business (Compatible tells what was found).
func ReadIncoming(r Memory, rootPA uint64) (*Incoming, error) {
	root, rootSize, err := readFDT(r, rootPA)
	if err != nil {
		return nil, rootDamage(r, rootPA, err)
	}
	var format string
	switch {
	case root.Root.IsCompatible(Compatible):
		format = Compatible
	case root.Root.IsCompatible(CompatibleV4):
		format = CompatibleV4
	default:
		c, _ := root.Root.String("compatible")
		return nil, fmt.Errorf("kho: root FDT at %#x is %q, not %q or %q (the kernel disables KHO revival)", rootPA, c, Compatible, CompatibleV4)
	}
	mapPA, err := root.Root.U64(PropMemoryMap)
	if err != nil {
		return nil, fmt.Errorf("kho: root FDT: %w (the kernel disables KHO revival)", err)
	}
	if mapPA == 0 {
		errno := "ENOENT"
		if format == CompatibleV4 {
			errno = "EINVAL"
		}
		return nil, fmt.Errorf("kho: root FDT has an empty %s (the kernel disables KHO revival: %s)", PropMemoryMap, errno)
	}
	var blocks []Block
	var mapPages []uint64
	if format == CompatibleV4 {
		var m *RadixMap
		if m, err = ReadRadix(r, mapPA); err == nil {
			blocks, mapPages = m.Blocks, m.Nodes
		}
	} else {
		blocks, mapPages, err = readMemoryMap(r, mapPA)
	}
	if err != nil {
		return nil, fmt.Errorf("kho: %s: %w", PropMemoryMap, err)
	}
	in := &Incoming{mem: r, rootPA: rootPA, rootSize: rootSize, root: root, blocks: blocks, mapPages: mapPages, format: format}
	if err := in.check(rootPA, physmem.PageSize); err != nil {
		return nil, fmt.Errorf("kho: root FDT page %#x: %w", rootPA, err)
	}
	return in, nil
}

// readFDT reads an FDT whose size comes from its own header, bounded by the
// memory and MaxFDTSize.
func readFDT(r Memory, pa uint64) (*fdt.Tree, uint64, error) {
	hdr, err := r.Bytes(pa, 40)
	if err != nil {
		return nil, 0, err
	}
	size, err := fdt.TotalSize(hdr)
	if err != nil {
		return nil, 0, err
	}
	if size > MaxFDTSize {
		return nil, 0, fmt.Errorf("totalsize %d above the %d bytes kho-sim accepts", size, MaxFDTSize)
	}
	blob, err := r.Bytes(pa, uint64(size))
	if err != nil {
		return nil, 0, fmt.Errorf("totalsize %d: %w", size, err)
	}
	t, err := fdt.Parse(blob)
	return t, uint64(size), err
}

// RootPA is where the root FDT was read.
func (in *Incoming) RootPA() uint64 { return in.rootPA }

// Memory is what the handover is read from.
func (in *Incoming) Memory() Memory { return in.mem }

// RootSize is the root FDT's totalsize.
func (in *Incoming) RootSize() uint64 { return in.rootSize }

// MapPages lists the memory map's own pages (kho-v1's chunks and bitmaps,
// kho-v4's radix nodes) in the order read. They are not preserved: the
// next kernel reuses them once it has read the map.
func (in *Incoming) MapPages() []uint64 { return slices.Clone(in.mapPages) }

// InOneBlock reports whether [pa, pa+size) lies inside a single preserved
// block, as every structure a kernel allocates with kho_alloc_preserve does.
func (in *Incoming) InOneBlock(pa, size uint64) bool {
	if size == 0 || pa+size < pa {
		return false
	}
	i, found := slices.BinarySearchFunc(in.blocks, pa, func(b Block, t uint64) int { return cmp.Compare(b.PA, t) })
	if !found {
		i--
	}
	return i >= 0 && pa+size <= in.blocks[i].End()
}

// Structure is one piece of a handover in memory.
type Structure struct {
	What     string
	PA, Size uint64
}

// Structures lists the root FDT and every child whose address (and, for
// kho-v1's FDTs, header) can be read.
func (in *Incoming) Structures() []Structure {
	out := []Structure{{What: "KHO root FDT", PA: in.rootPA, Size: in.rootSize}}
	for _, name := range in.SubtreeNames() {
		if pa, size, err := in.SubtreeBlob(name); err == nil {
			out = append(out, Structure{What: fmt.Sprintf("subtree %q", name), PA: pa, Size: size})
		}
	}
	return out
}

// Root is the parsed root FDT.
func (in *Incoming) Root() *fdt.Tree { return in.root }

// Blocks lists the preserved blocks, sorted by address.
func (in *Incoming) Blocks() []Block { return slices.Clone(in.blocks) }

// Ranges lists the preserved memory as page ranges, adjacent blocks merged.
func (in *Incoming) Ranges() []physmem.Range {
	var out []physmem.Range
	for _, b := range in.blocks {
		if n := len(out); n > 0 && out[n-1].Start+out[n-1].Size == b.PA {
			out[n-1].Size += b.Size()
			continue
		}
		out = append(out, physmem.Range{Start: b.PA, Size: b.Size()})
	}
	return out
}

// SubtreeNames lists the root's children in blob order.
func (in *Incoming) SubtreeNames() []string {
	names := make([]string, len(in.root.Root.Children))
	for i, c := range in.root.Root.Children {
		names[i] = c.Name
	}
	return names
}

// Compatible is the root FDT's compatible: Compatible ("kho-v1") or
// CompatibleV4 ("kho-v4"), which says how children and the memory map are
// encoded.
func (in *Incoming) Compatible() string { return in.format }

// Subtree models kho_retrieve_subtree: the address of the named child's
// FDT (kho-v1 "fdt") or blob (kho-v4 "preserved-data"). ENOENT without such
// a child, EINVAL if the address, or in kho-v4 the blob-size, is not a u64.
func (in *Incoming) Subtree(name string) (uint64, error) {
	pa, _, err := in.subtree(name)
	return pa, err
}

func (in *Incoming) subtree(name string) (pa, size uint64, err error) {
	n := in.root.Root.Child(name)
	if n == nil {
		return 0, 0, fmt.Errorf("kho: no subtree %q: %w", name, unix.ENOENT)
	}
	return ChildProps(n, in.format == CompatibleV4)
}

// ChildProps reads a child of the root FDT as kho_retrieve_subtree does:
// kho-v1's "fdt", or kho-v4's "preserved-data" and "blob-size" (size 0 in
// kho-v1). EINVAL if one is not a u64; whichever of the two is readable
// is returned all the same, for readers that show what there is.
func ChildProps(n *fdt.Node, v4 bool) (pa, size uint64, err error) {
	return subtreeProps(n.Name, v4, n.U64)
}

// subtreeProps is ChildProps on a child whose 8-byte little-endian
// properties u64 reads.
func subtreeProps(name string, v4 bool, u64 func(prop string) (uint64, error)) (pa, size uint64, err error) {
	if !v4 {
		if pa, err = u64(PropSubFDT); err != nil {
			return 0, 0, fmt.Errorf("kho: subtree %q: %v: %w", name, err, unix.EINVAL)
		}
		return pa, 0, nil
	}
	pa, perr := u64(PropBlobData)
	size, serr := u64(PropBlobSize)
	switch {
	case perr != nil:
		return 0, size, fmt.Errorf("kho: subtree %q: %v: %w", name, perr, unix.EINVAL)
	case serr != nil:
		return pa, 0, fmt.Errorf("kho: broken subtree %q: missing or invalid %s: %v: %w", name, PropBlobSize, serr, unix.EINVAL)
	}
	return pa, size, nil
}

// SubtreeBlob models 7.2's kho_retrieve_subtree: the named child's address
// and size. A kho-v1 child is an FDT, so its size is its header's
// totalsize, read from preserved memory.
func (in *Incoming) SubtreeBlob(name string) (pa, size uint64, err error) {
	pa, size, err = in.subtree(name)
	if err != nil || in.format == CompatibleV4 {
		return pa, size, err
	}
	hdr, err := in.Map(pa, 40)
	if err != nil {
		return 0, 0, fmt.Errorf("kho: subtree %q FDT: %w", name, err)
	}
	n, err := fdt.TotalSize(hdr)
	if err != nil {
		return 0, 0, fmt.Errorf("kho: subtree %q FDT at %#x: %w", name, pa, err)
	}
	return pa, uint64(n), nil
}

// SubtreeBytes maps the named child's blob (or kho-v1 FDT): every byte of
// it must be preserved, and it may not be empty or larger than MaxFDTSize.
func (in *Incoming) SubtreeBytes(name string) ([]byte, error) {
	pa, size, err := in.SubtreeBlob(name)
	if err != nil {
		return nil, err
	}
	if size == 0 || size > MaxFDTSize {
		return nil, fmt.Errorf("kho: subtree %q: blob-size %d: want 1 to %d bytes: %w", name, size, MaxFDTSize, unix.EINVAL)
	}
	blob, err := in.Map(pa, size)
	if err != nil {
		return nil, fmt.Errorf("kho: subtree %q: %w", name, err)
	}
	return blob, nil
}

// SubtreeFDT reads and parses the named child's FDT, whose pages must be
// preserved. It returns the raw blob too, for byte-level checks. In kho-v4
// the FDT must fit in the child's blob-size.
func (in *Incoming) SubtreeFDT(name string) (*fdt.Tree, []byte, error) {
	if in.format == CompatibleV4 {
		blob, err := in.SubtreeBytes(name)
		if err != nil {
			return nil, nil, err
		}
		size, err := fdt.TotalSize(blob)
		if err != nil {
			return nil, nil, fmt.Errorf("kho: subtree %q FDT: %w", name, err)
		}
		if size > len(blob) {
			return nil, nil, fmt.Errorf("kho: subtree %q FDT: totalsize %d above its blob-size %d: %w", name, size, len(blob), unix.EINVAL)
		}
		t, err := fdt.Parse(blob[:size])
		if err != nil {
			return nil, nil, fmt.Errorf("kho: subtree %q FDT: %w", name, err)
		}
		return t, blob[:size], nil
	}
	pa, err := in.Subtree(name)
	if err != nil {
		return nil, nil, err
	}
	hdr, err := in.Map(pa, 40)
	if err != nil {
		return nil, nil, fmt.Errorf("kho: subtree %q FDT: %w", name, err)
	}
	size, err := fdt.TotalSize(hdr)
	if err != nil {
		return nil, nil, fmt.Errorf("kho: subtree %q FDT at %#x: %w", name, pa, err)
	}
	blob, err := in.Map(pa, uint64(size))
	if err != nil {
		return nil, nil, fmt.Errorf("kho: subtree %q FDT: %w", name, err)
	}
	t, err := fdt.Parse(blob)
	if err != nil {
		return nil, nil, fmt.Errorf("kho: subtree %q FDT at %#x: %w", name, pa, err)
	}
	return t, blob, nil
}

// Map gives access to [pa, pa+size) only if the previous kernel preserved
// every page of it: the incoming side never uses memory it was not handed.
func (in *Incoming) Map(pa, size uint64) ([]byte, error) {
	if err := in.check(pa, size); err != nil {
		return nil, err
	}
	return in.mem.Bytes(pa, size)
}

// Bytes is Map: an Incoming is a PhysReader of preserved memory only.
func (in *Incoming) Bytes(pa, n uint64) ([]byte, error) { return in.Map(pa, n) }

// Outside says where a read of [pa, pa+n) that the memory map does not
// preserve lands in the next kernel: in RAM when it lies in the handover's
// range (the next kernel has the region as RAM, free to reuse what is not
// preserved), else as Outside of the memory says.
func (in *Incoming) Outside(pa, n uint64) OutsideRead {
	if contains(in.mem, pa, n) {
		return OutsideInRAM
	}
	return Outside(in.mem, pa, n)
}

// BlockAt reports the order of the preserved block that starts at pa, as
// kho_restore_folio takes it from the memory map, and false when no block
// starts there.
func (in *Incoming) BlockAt(pa uint64) (order uint, ok bool) {
	i, found := slices.BinarySearchFunc(in.blocks, pa, func(b Block, t uint64) int { return cmp.Compare(b.PA, t) })
	if !found {
		return 0, false
	}
	return in.blocks[i].Order, true
}

// check reports whether the previous kernel preserved all of [pa, pa+size).
func (in *Incoming) check(pa, size uint64) error {
	if size == 0 || pa+size < pa {
		return fmt.Errorf("range %#x+%#x: %w", pa, size, physmem.ErrOutOfRegion)
	}
	if !contains(in.mem, pa, size) {
		rg := in.mem.Range()
		return fmt.Errorf("range %#x+%#x outside region %#x-%#x: %w", pa, size, rg.Start, rg.End()-1, physmem.ErrOutOfRegion)
	}
	next := pa &^ (physmem.PageSize - 1)
	end := pa + size
	i, _ := slices.BinarySearchFunc(in.blocks, next, func(b Block, t uint64) int { return cmp.Compare(b.PA+b.Size(), t+1) })
	for ; next < end; i++ {
		if i >= len(in.blocks) || in.blocks[i].PA > next {
			return fmt.Errorf("page %#x of %#x+%#x: %w", next, pa, size, ErrNotPreserved)
		}
		next = in.blocks[i].PA + in.blocks[i].Size()
	}
	return nil
}

// FindMapBit finds where the memory map records the preserved block that
// holds pa: 7.2's radix-tree bit (FindRadixBit) or 7.0's bit in a chunk's
// bitmap. ok is false when no block holds pa. It reads the map as
// ReadIncoming checked it.
func (in *Incoming) FindMapBit(pa uint64) (b RadixBit, ok bool, err error) {
	mapPA, err := in.root.Root.U64(PropMemoryMap)
	if err != nil {
		return RadixBit{}, false, fmt.Errorf("kho: %w", err)
	}
	if in.format == CompatibleV4 {
		return FindRadixBit(in.mem, mapPA, pa)
	}
	return findChunkBit(in.mem, mapPA, pa, len(in.mapPages))
}

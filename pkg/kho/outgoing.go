package kho

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/pkg/fdt"
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// Outgoing is the outgoing half of KHO for one simulated boot: the kernel's
// kho_out, created fresh per boot instead of living in a global.
type Outgoing struct {
	mu     sync.Mutex
	alloc  *physmem.Allocator
	rootPA uint64
	// allocs maps the start of every kho_alloc_preserve block to its size.
	allocs map[uint64]uint64
	// preserved maps a preserved block's first pfn to its order, as the
	// kernel's per-order bitmaps record it.
	preserved map[uint64]uint
	// serialized holds the chunk and bitmap pages of the last Finalize;
	// like kmalloc'd memory in the kernel they are not themselves preserved.
	serialized []uint64
	format     string
	// tree is the kho-v4 memory map; its root's address is in the root FDT
	// from the start, as in 7.2.
	tree *radixTree
}

// Options select the handover format of an Outgoing.
type Options struct {
	// Generation is the kernel generation whose handover is written:
	// "kho-v4" for kernel.V72, "kho-v1" (Linux 7.0's) for the others.
	Generation kernel.Generation
	// Release and KexecCount fill the kho-v4 kexec-metadata child:
	// previous_release is this kernel's release and kexec_count the
	// incoming count (0 after a cold boot) plus one.
	Release    string
	KexecCount uint32
}

// NewOutgoing models Linux 7.0's kho_init: it allocates and preserves the
// root FDT page and writes the empty root ("kho-v1",
// preserved-memory-map = 0) into it.
func NewOutgoing(alloc *physmem.Allocator) (*Outgoing, error) {
	return NewOutgoingWith(alloc, Options{})
}

// NewOutgoingWith models kho_init of the kernel generation opts.Generation
// names. For 7.2 it follows 7.2: the radix tree's root page (not preserved),
// the root FDT page (preserved) holding "kho-v4" and the tree's address, and
// the kexec-metadata child in a preserved block of its own.
func NewOutgoingWith(alloc *physmem.Allocator, opts Options) (*Outgoing, error) {
	if _, err := kernel.Parse(string(opts.Generation)); err != nil {
		return nil, fmt.Errorf("kho: %w", err)
	}
	f := CompatibleOf(opts.Generation)
	o := &Outgoing{alloc: alloc, allocs: map[uint64]uint64{}, preserved: map[uint64]uint{}, format: f}
	if f == CompatibleV4 {
		t, err := newRadixTree(alloc)
		if err != nil {
			return nil, err
		}
		o.tree = t
	}
	pa, _, err := o.AllocPreserve(physmem.PageSize)
	if err != nil {
		return nil, fmt.Errorf("kho: allocate root FDT: %w", err)
	}
	o.rootPA = pa
	var memMap uint64
	if f == CompatibleV4 {
		memMap = o.tree.rootPA
	}
	if err := o.writeEmptyRoot(memMap); err != nil {
		return nil, err
	}
	if f == CompatibleV4 {
		if err := o.addKexecMetadata(opts.Release, opts.KexecCount); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// Compatible is the root compatible this Outgoing writes.
func (o *Outgoing) Compatible() string { return o.format }

// addKexecMetadata models kho_out_kexec_metadata.
func (o *Outgoing) addKexecMetadata(release string, incomingCount uint32) error {
	pa, mem, err := o.AllocPreserve(KexecMetadataSize)
	if err != nil {
		return fmt.Errorf("kho: allocate kexec-metadata: %w", err)
	}
	binary.LittleEndian.PutUint32(mem[0:], KexecMetadataVersion)
	rel := mem[4 : 4+ReleaseLen]
	n := copy(rel[:ReleaseLen-1], release) // strscpy
	rel[n] = 0
	binary.LittleEndian.PutUint32(mem[4+ReleaseLen:], incomingCount+1)
	return o.AddBlob(KexecMetadataName, pa, KexecMetadataSize)
}

// RootPA is the physical address of the KHO root FDT, what a real kernel
// passes to the next one in setup_data and kho-sim on its command line.
func (o *Outgoing) RootPA() uint64 { return o.rootPA }

// AllocPreserve models kho_alloc_preserve (7.0 and 7.2 alike): a zeroed
// folio of 2^order pages, order = get_order(size), preserved as one block
// of that order (kho_preserve_folio). EINVAL for size 0, E2BIG above
// MAX_PAGE_ORDER, ENOMEM when the region has no free aligned run.
func (o *Outgoing) AllocPreserve(size uint64) (uint64, []byte, error) {
	if size == 0 {
		return 0, nil, fmt.Errorf("kho: alloc_preserve of 0 bytes: %w", unix.EINVAL)
	}
	order := getOrder(size)
	if order > MaxPageOrder {
		return 0, nil, fmt.Errorf("kho: alloc_preserve of %d bytes needs order %d > %d: %w", size, order, MaxPageOrder, unix.E2BIG)
	}
	n := uint64(physmem.PageSize) << order
	pa, mem, err := o.allocFolio(n)
	if err != nil {
		return 0, nil, fmt.Errorf("kho: alloc_preserve %d bytes: %w", size, err)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.allocs[pa] = n
	o.preserveRange(pa, n)
	return pa, mem, nil
}

// allocFolio places a block of n bytes (a power of two pages) where
// folio_alloc would: aligned to its own size, so it is one preserved block
// of its order, the lowest such free run. The next kernel restores it as
// one folio (kho_restore_folio) of that order.
func (o *Outgoing) allocFolio(n uint64) (uint64, []byte, error) {
	pa, mem, err := o.alloc.AllocAligned(n, n, true)
	if err != nil {
		return 0, nil, fmt.Errorf("kho: folio of %d pages: %w", n/physmem.PageSize, err)
	}
	return pa, mem, nil
}

// UnpreserveFree models kho_unpreserve_free.
func (o *Outgoing) UnpreserveFree(pa uint64) error {
	o.mu.Lock()
	n, ok := o.allocs[pa]
	if !ok {
		o.mu.Unlock()
		return fmt.Errorf("kho: unpreserve_free %#x: not a kho_alloc_preserve block: %w", pa, unix.EINVAL)
	}
	delete(o.allocs, pa)
	o.unpreserveRange(pa, n)
	o.mu.Unlock()
	return o.alloc.Free(pa)
}

// preserveRange records [pa, pa+n) the way kho_preserve_pages splits it:
// each step takes the largest order both aligned at pfn and fitting in what
// remains, so an order-aligned folio is exactly one block.
func (o *Outgoing) preserveRange(pa, n uint64) {
	forEachBlock(pa>>pageShift, (pa+n)>>pageShift, func(pfn uint64, order uint) { o.preserved[pfn] = order })
}

func (o *Outgoing) unpreserveRange(pa, n uint64) {
	forEachBlock(pa>>pageShift, (pa+n)>>pageShift, func(pfn uint64, _ uint) { delete(o.preserved, pfn) })
}

func forEachBlock(pfn, end uint64, fn func(pfn uint64, order uint)) {
	for pfn < end {
		order := uint(bits.Len64(end-pfn) - 1)
		if pfn != 0 {
			order = min(order, uint(bits.TrailingZeros64(pfn)))
		}
		fn(pfn, order)
		pfn += 1 << order
	}
}

// getOrder is the kernel's get_order: the smallest order whose block holds size.
func getOrder(size uint64) uint {
	pages := (size + physmem.PageSize - 1) >> pageShift
	if pages <= 1 {
		return 0
	}
	return uint(bits.Len64(pages - 1))
}

// AddSubtree models kho_add_subtree of an FDT: a child of the root named
// name whose "fdt" property is fdtPA (kho-v1), or whose preserved-data is
// fdtPA and blob-size the FDT's totalsize (kho-v4: the FDT must already be
// written). EEXIST if the name is taken. The root is edited in place as
// the kernel edits it (see editRoot), so each new child comes before the
// existing ones.
func (o *Outgoing) AddSubtree(name string, fdtPA uint64) error {
	var size uint64
	if o.format == CompatibleV4 {
		hdr, err := o.alloc.Region().Bytes(fdtPA, 40)
		if err != nil {
			return fmt.Errorf("kho: add_subtree %q: %w", name, err)
		}
		n, err := fdt.TotalSize(hdr)
		if err != nil {
			return fmt.Errorf("kho: add_subtree %q: FDT at %#x: %w", name, fdtPA, err)
		}
		size = uint64(n)
	}
	return o.addChild(name, fdtPA, size)
}

// AddBlob models 7.2's kho_add_subtree(name, blob, size) of a blob that is
// not an FDT. EINVAL on a kho-v1 handover, whose children must be FDTs, or
// for an empty blob; EEXIST if the name is taken.
func (o *Outgoing) AddBlob(name string, pa, size uint64) error {
	if o.format != CompatibleV4 {
		return fmt.Errorf("kho: add blob %q: a %s child must be an FDT: %w", name, o.format, unix.EINVAL)
	}
	if size == 0 {
		return fmt.Errorf("kho: add blob %q of 0 bytes: %w", name, unix.EINVAL)
	}
	return o.addChild(name, pa, size)
}

// addChild is kho_add_subtree's edit: fdt_add_subnode, then the address
// (and, for kho-v4, the size) with fdt_setprop. When the page is full,
// 7.2 deletes the half-made child and returns ENOMEM; 7.0 keeps it without
// its "fdt" and returns fdt_setprop's -FDT_ERR_NOSPACE (-3) as it is,
// which reads as -ESRCH.
func (o *Outgoing) addChild(name string, pa, size uint64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	err := o.editRoot(true, func(e *fdt.Editor) error {
		off, err := e.AddSubnode(0, name)
		switch {
		case errors.Is(err, fdt.ErrExists):
			return unix.EEXIST
		case err != nil:
			return fmt.Errorf("%w: %w", unix.ENOMEM, err)
		}
		props := []struct {
			name  string
			value uint64
		}{{PropSubFDT, pa}}
		if o.format == CompatibleV4 {
			props = []struct {
				name  string
				value uint64
			}{{PropBlobData, pa}, {PropBlobSize, size}}
		}
		for _, p := range props {
			err := e.SetProp(off, p.name, binary.LittleEndian.AppendUint64(nil, p.value))
			if err == nil {
				continue
			}
			if o.format == Compatible {
				return fmt.Errorf("%w (libfdt's -FDT_ERR_NOSPACE as an errno): %w", unix.ESRCH, err)
			}
			if derr := e.DelNode(off); derr != nil {
				return fmt.Errorf("kho: delete half-made child: %w", derr)
			}
			return fmt.Errorf("%w: %w", unix.ENOMEM, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("kho: add_subtree %q: %w", name, err)
	}
	return nil
}

// RemoveSubtree models kho_remove_subtree: the first child whose address
// property (fdt, or preserved-data) is fdtPA goes.
func (o *Outgoing) RemoveSubtree(fdtPA uint64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	prop := PropSubFDT
	if o.format == CompatibleV4 {
		prop = PropBlobData
	}
	err := o.editRoot(true, func(e *fdt.Editor) error {
		subs, err := e.Subnodes(0)
		if err != nil {
			return err
		}
		for _, off := range subs {
			v, err := e.Prop(off, prop)
			if err != nil || len(v) != 8 || binary.LittleEndian.Uint64(v) != fdtPA {
				continue
			}
			return e.DelNode(off)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("kho: remove_subtree %#x: %w", fdtPA, err)
	}
	return nil
}

// Finalize models kho_finalize: it serializes the preserved-memory map into
// freshly allocated chunk and bitmap pages and stores the first chunk's
// address in the root FDT. It returns the root FDT's address. Called again,
// it frees the previous map first, as kho_update_memory_map does.
//
// 7.2 has no finalize: its radix tree is updated at every preservation. For
// CompatibleV4 Finalize builds the tree from the preserved blocks at once, which
// yields the same tree; the root FDT keeps the tree root's address.
func (o *Outgoing) Finalize() (uint64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.format == CompatibleV4 {
		o.tree.reset()
		for _, b := range o.preservedLocked() {
			if err := o.tree.add(b.PA, b.Order); err != nil {
				o.tree.reset()
				return 0, err
			}
		}
		return o.rootPA, nil
	}
	o.freeSerializedLocked()
	first, err := o.serializeMemoryMap()
	if err != nil {
		o.freeSerializedLocked()
		return 0, err
	}
	if err := o.setMemoryMapLocked(first); err != nil {
		return 0, err
	}
	return o.rootPA, nil
}

// Abort releases what Finalize allocated and resets the map property, for
// a handover that will not happen after all.
func (o *Outgoing) Abort() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.format == CompatibleV4 {
		o.tree.reset()
		return nil
	}
	o.freeSerializedLocked()
	return o.setMemoryMapLocked(0)
}

// Preserved lists the preserved blocks, sorted by address.
func (o *Outgoing) Preserved() []Block {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.preservedLocked()
}

func (o *Outgoing) preservedLocked() []Block {
	out := make([]Block, 0, len(o.preserved))
	for pfn, order := range o.preserved {
		out = append(out, Block{PA: pfn << pageShift, Order: order})
	}
	slices.SortFunc(out, func(a, b Block) int { return cmp.Compare(a.PA, b.PA) })
	return out
}

func (o *Outgoing) freeSerializedLocked() {
	for _, pa := range o.serialized {
		_ = o.alloc.Free(pa) // pages this value allocated itself; Free cannot miss them
	}
	o.serialized = nil
}

// writeEmptyRoot models kho_out_fdt_setup: the root with its compatible
// and preserved-memory-map, built with libfdt's sequential writer in the
// root's page.
func (o *Outgoing) writeEmptyRoot(memMap uint64) error {
	page, err := o.alloc.Region().Bytes(o.rootPA, physmem.PageSize)
	if err != nil {
		return fmt.Errorf("kho: root FDT page: %w", err)
	}
	b := fdt.NewBuilder(physmem.PageSize)
	_ = b.BeginNode("")
	_ = b.PropertyString("compatible", o.format)
	_ = b.PropertyU64(PropMemoryMap, memMap)
	_ = b.EndNode()
	if err := b.FinishInto(page); err != nil { // errors are sticky
		return fmt.Errorf("kho: build root FDT: %w", err)
	}
	return nil
}

// editRoot runs edit on the root FDT in its page. With open, as
// kho_add_subtree and kho_remove_subtree do, it is fdt_open_into(root,
// root, PAGE_SIZE), the edit, then fdt_pack, whatever the edit returned;
// without, the edit may only write in place (fdt_getprop_w).
func (o *Outgoing) editRoot(open bool, edit func(*fdt.Editor) error) error {
	page, err := o.alloc.Region().Bytes(o.rootPA, physmem.PageSize)
	if err != nil {
		return fmt.Errorf("root FDT page: %w", err)
	}
	if !open {
		e, err := fdt.Open(page)
		if err != nil {
			return fmt.Errorf("root FDT: %w", err)
		}
		return edit(e)
	}
	e, err := fdt.OpenInto(page)
	if err != nil {
		return fmt.Errorf("%w: root FDT: %w", unix.ENOMEM, err)
	}
	editErr := edit(e)
	if _, err := e.Pack(); err != nil {
		return fmt.Errorf("pack root FDT: %w", err)
	}
	return editErr
}

// setMemoryMapLocked models kho_update_memory_map's store of the first
// chunk's address: in place, into the property the root was built with.
func (o *Outgoing) setMemoryMapLocked(pa uint64) error {
	err := o.editRoot(false, func(e *fdt.Editor) error {
		v, err := e.Prop(0, PropMemoryMap)
		if err != nil {
			return err
		}
		if len(v) != 8 {
			return fmt.Errorf("%s of %d bytes: %w", PropMemoryMap, len(v), fdt.ErrBadValue)
		}
		binary.LittleEndian.PutUint64(v, pa)
		return nil
	})
	if err != nil {
		return fmt.Errorf("kho: update memory map: %w", err)
	}
	return nil
}

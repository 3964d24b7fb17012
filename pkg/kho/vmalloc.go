package kho

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// The vmalloc preservation ABI of Linux 7.2 (include/linux/kho/abi/
// kexec_handover.h: struct kho_vmalloc, kho_vmalloc_hdr, kho_vmalloc_chunk;
// kernel/liveupdate/kexec_handover.c: kho_preserve_vmalloc,
// kho_restore_vmalloc). A vmalloc area is described by a 16-byte
// descriptor that points to a list of one-page chunks, each a next pointer
// and a zero-terminated array of the physical addresses of the area's
// 2^order-page runs, in the area's order.
const (
	// VmallocSize is sizeof(struct kho_vmalloc): u64 first; unsigned int
	// total_pages; unsigned short flags; unsigned short order.
	VmallocSize = 16
	// VmallocChunkHeaderSize is sizeof(struct kho_vmalloc_hdr): u64 next.
	VmallocChunkHeaderSize = 8
	// VmallocChunkEntries is KHO_VMALLOC_SIZE: run addresses per chunk.
	VmallocChunkEntries = (physmem.PageSize - VmallocChunkHeaderSize) / 8

	// VmallocFlagAlloc is KHO_VMALLOC_ALLOC (the area had VM_ALLOC).
	VmallocFlagAlloc uint16 = 0x0001
	// VmallocFlagHugeVmap is KHO_VMALLOC_HUGE_VMAP (VM_ALLOW_HUGE_VMAP).
	VmallocFlagHugeVmap uint16 = 0x0002
	// vmallocFlagsKnown are the flags kho_flags_to_vmalloc translates.
	vmallocFlagsKnown = VmallocFlagAlloc | VmallocFlagHugeVmap

	// MaxVmallocPages bounds the pages of an area RestoreVmalloc accepts
	// (4 GiB), and with it the chunks it walks.
	MaxVmallocPages = 1 << 20
	// maxVmallocPhys bounds every physical address of a chunk (52 bits,
	// the x86-64 limit and the reach of a radix key).
	maxVmallocPhys = 1 << 52
)

// Vmalloc is struct kho_vmalloc, the descriptor of a preserved vmalloc area.
type Vmalloc struct {
	First      uint64 // physical address of the first kho_vmalloc_chunk
	TotalPages uint32 // pages of the area (vm->nr_pages)
	Flags      uint16 // VmallocFlag*
	Order      uint16 // every run is 2^Order pages (get_vm_area_page_order)
}

// Put writes v into b[:VmallocSize], little endian as on x86-64 (the
// fields in order, unpadded, are the C layout; pkg/abi checks it against
// the kernel's BTF).
func (v Vmalloc) Put(b []byte) { kernel.PutStruct(b, v) }

// ParseVmalloc decodes the descriptor at the start of b without judging
// it; RestoreVmalloc does that.
func ParseVmalloc(b []byte) (Vmalloc, error) { return kernel.ReadStruct[Vmalloc]("kho_vmalloc", b) }

// IsZero reports an empty descriptor, what a memfd without folios keeps
// (its memfd_luo_ser comes zeroed from kho_alloc_preserve and nothing
// writes the descriptor).
func (v Vmalloc) IsZero() bool { return v == Vmalloc{} }

// PageAllocator hands out zeroed, preserved, naturally aligned blocks, as
// kho_alloc_preserve does; *Outgoing satisfies it. A one-page block is
// preserved as one order-0 page, which is what the kernel's
// get_zeroed_page plus kho_preserve_pages(page, 1) records.
type PageAllocator interface {
	AllocPreserve(size uint64) (pa uint64, mem []byte, err error)
}

// PreserveVmalloc models kho_preserve_vmalloc for an area whose runs of
// 2^order pages lie at runs, in the area's order; their preservation is the
// caller's (in the kernel, kho_preserve_pages of each run). It allocates
// the chunk pages from alloc and fills them as the kernel does: a first
// chunk always, then a new one each time one fills up, so an area of a
// multiple of VmallocChunkEntries runs ends with an empty chunk. It returns
// the descriptor and the chunk pages in list order.
func PreserveVmalloc(alloc PageAllocator, runs []uint64, order uint, flags uint16) (Vmalloc, []uint64, error) {
	if len(runs) == 0 {
		return Vmalloc{}, nil, fmt.Errorf("kho: preserve_vmalloc of an empty area: %w", unix.EINVAL)
	}
	if flags&^vmallocFlagsKnown != 0 || flags&VmallocFlagAlloc == 0 || (order > 0 && flags&VmallocFlagHugeVmap == 0) || order > MaxPageOrder {
		return Vmalloc{}, nil, fmt.Errorf("kho: preserve_vmalloc with flags %#x order %d: %w", flags, order, unix.EOPNOTSUPP)
	}
	run := uint64(physmem.PageSize) << order
	total := uint64(len(runs)) << order
	if total > MaxVmallocPages {
		return Vmalloc{}, nil, fmt.Errorf("kho: preserve_vmalloc of %d pages, more than %d: %w", total, MaxVmallocPages, unix.E2BIG)
	}
	for i, pa := range runs {
		if pa == 0 || pa%run != 0 || pa >= maxVmallocPhys {
			return Vmalloc{}, nil, fmt.Errorf("kho: preserve_vmalloc run %d at %#x: not a %d-byte aligned address: %w", i, pa, run, unix.EINVAL)
		}
	}
	var chunks []uint64
	var cur []byte
	newChunk := func() error {
		pa, mem, err := alloc.AllocPreserve(physmem.PageSize)
		if err != nil {
			return fmt.Errorf("kho: preserve_vmalloc chunk %d: %w", len(chunks), err)
		}
		if uint64(len(mem)) < physmem.PageSize {
			return fmt.Errorf("kho: preserve_vmalloc chunk %d: %d bytes at %#x: %w", len(chunks), len(mem), pa, unix.EFAULT)
		}
		if cur != nil {
			binary.LittleEndian.PutUint64(cur, pa) // KHOSER_STORE_PTR(cur->hdr.next)
		}
		cur = mem[:physmem.PageSize]
		chunks = append(chunks, pa)
		return nil
	}
	if err := newChunk(); err != nil {
		return Vmalloc{}, nil, err
	}
	idx := 0
	for _, pa := range runs {
		binary.LittleEndian.PutUint64(cur[VmallocChunkHeaderSize+8*idx:], pa)
		if idx++; idx == VmallocChunkEntries {
			if err := newChunk(); err != nil {
				return Vmalloc{}, chunks, err
			}
			idx = 0
		}
	}
	v := Vmalloc{First: chunks[0], TotalPages: uint32(total), Flags: flags, Order: uint16(order)}
	return v, chunks, nil
}

// WriteVmalloc models what vcalloc(n, size) followed by
// kho_preserve_vmalloc leaves in memory for data: order-0 pages of alloc
// (preserved as kho_preserve_pages does), the rest of the last page zero,
// and the chunk list. It returns the descriptor, the area's pages in order
// and the chunk pages.
func WriteVmalloc(alloc PageAllocator, data []byte) (v Vmalloc, pages, chunks []uint64, err error) {
	if len(data) == 0 {
		return Vmalloc{}, nil, nil, fmt.Errorf("kho: vmalloc of 0 bytes: %w", unix.EINVAL)
	}
	n := (uint64(len(data)) + physmem.PageSize - 1) / physmem.PageSize
	if n > MaxVmallocPages {
		return Vmalloc{}, nil, nil, fmt.Errorf("kho: vmalloc of %d bytes, more than %d pages: %w", len(data), MaxVmallocPages, unix.E2BIG)
	}
	for i := uint64(0); i < n; i++ {
		pa, mem, err := alloc.AllocPreserve(physmem.PageSize)
		if err != nil {
			return Vmalloc{}, pages, nil, fmt.Errorf("kho: vmalloc page %d: %w", i, err)
		}
		if uint64(len(mem)) < physmem.PageSize {
			return Vmalloc{}, pages, nil, fmt.Errorf("kho: vmalloc page %d: %d bytes at %#x: %w", i, len(mem), pa, unix.EFAULT)
		}
		copy(mem[:physmem.PageSize], data[i*physmem.PageSize:])
		pages = append(pages, pa)
	}
	v, chunks, err = PreserveVmalloc(alloc, pages, 0, VmallocFlagAlloc)
	return v, pages, chunks, err
}

// PhysReader reads physical memory: the n bytes at pa, or an error if any
// of them is unavailable. physmem.Region and kho.PageStore satisfy it.
type PhysReader interface {
	Bytes(pa, n uint64) ([]byte, error)
}

// VmallocArea is a vmalloc area RestoreVmalloc found.
type VmallocArea struct {
	Vmalloc
	// Chunks are the chunk pages in list order.
	Chunks []uint64
	// Runs are the physical addresses of the area's 2^Order-page runs, in
	// the area's order.
	Runs []uint64
}

// Size is the area's length in bytes.
func (a *VmallocArea) Size() uint64 { return uint64(a.TotalPages) * physmem.PageSize }

// Blocks lists the memory the previous kernel preserved for the area, in
// the blocks kho_preserve_pages records: each chunk one order-0 page, each
// run split into the largest aligned blocks (one block of Order for an
// aligned run). A reader checks each against the memory map.
func (a *VmallocArea) Blocks() []Block {
	out := make([]Block, 0, len(a.Chunks)+len(a.Runs))
	for _, pa := range a.Chunks {
		out = append(out, Block{PA: pa})
	}
	for _, pa := range a.Runs {
		forEachBlock(pa>>pageShift, (pa>>pageShift)+(1<<a.Order), func(pfn uint64, order uint) {
			out = append(out, Block{PA: pfn << pageShift, Order: order})
		})
	}
	return out
}

// Read returns a copy of the area's bytes [off, off+n), as the restored
// vmalloc mapping would show them.
func (a *VmallocArea) Read(mem PhysReader, off, n uint64) ([]byte, error) {
	if off > a.Size() || n > a.Size()-off {
		return nil, fmt.Errorf("kho: vmalloc area of %d bytes: read %d at %d: %w", a.Size(), n, off, unix.ERANGE)
	}
	run := uint64(physmem.PageSize) << a.Order
	out := make([]byte, 0, n)
	for n > 0 {
		i, in := off/run, off%run
		k := min(n, run-in)
		b, err := mem.Bytes(a.Runs[i]+in, k)
		if err != nil {
			return nil, fmt.Errorf("kho: vmalloc run %d at %#x: %w", i, a.Runs[i], err)
		}
		if uint64(len(b)) != k {
			return nil, fmt.Errorf("kho: vmalloc run %d at %#x: %d bytes, want %d: %w", i, a.Runs[i], len(b), k, unix.EFAULT)
		}
		out = append(out, b...)
		off, n = off+k, n-k
	}
	return out, nil
}

// RestoreVmalloc walks the chunk list of v in untrusted memory, as
// kho_restore_vmalloc does, and more strictly. The kernel fails when a run
// would go past total_pages, when a run or chunk page is not preserved
// (which also catches a repeated page or a chunk list that loops, since a
// restored page loses its KHO magic), and when the runs do not add up to
// total_pages. Beyond that it ignores unknown flags, trusts order (1 <<
// order, a u16), truncates misaligned addresses and follows a next pointer
// from a chunk that is not full; RestoreVmalloc rejects all of these,
// since kho_preserve_vmalloc never writes them. Preservation itself is the
// caller's to check, against Blocks.
func RestoreVmalloc(mem PhysReader, v Vmalloc) (*VmallocArea, error) {
	if v.Flags&^vmallocFlagsKnown != 0 {
		return nil, fmt.Errorf("kho_vmalloc: flags %#x: unknown bits %#x (the 7.2 kernel ignores them): %w", v.Flags, v.Flags&^vmallocFlagsKnown, unix.EINVAL)
	}
	if v.Flags&VmallocFlagAlloc == 0 {
		return nil, fmt.Errorf("kho_vmalloc: flags %#x without KHO_VMALLOC_ALLOC: not a vmalloc area: %w", v.Flags, unix.EINVAL)
	}
	if v.Order > MaxPageOrder || (v.Order > 0 && v.Flags&VmallocFlagHugeVmap == 0) {
		return nil, fmt.Errorf("kho_vmalloc: order %d with flags %#x (huge mappings need KHO_VMALLOC_HUGE_VMAP, at most order %d): %w", v.Order, v.Flags, MaxPageOrder, unix.EINVAL)
	}
	contig := uint64(1) << v.Order
	total := uint64(v.TotalPages)
	if total == 0 || total > MaxVmallocPages || total%contig != 0 {
		return nil, fmt.Errorf("kho_vmalloc: total_pages %d, want 1..%d in runs of %d: %w", total, MaxVmallocPages, contig, unix.EINVAL)
	}
	a := &VmallocArea{Vmalloc: v}
	nruns := total / contig
	run := uint64(physmem.PageSize) << v.Order
	// Runs are aligned to their own size and chunks are single pages, so
	// two runs overlap only if they start at the same address, and a chunk
	// lies in a run only if it rounds down to the run's start.
	runAt := make(map[uint64]int)
	chunkAt := make(map[uint64]int)
	claimChunk := func(what string, pa uint64) error {
		if c, ok := chunkAt[pa]; ok {
			return fmt.Errorf("kho_vmalloc: %s: page %#x already holds chunk %d: %w", what, pa, c, unix.EINVAL)
		}
		chunkAt[pa] = len(chunkAt)
		return nil
	}
	claimRun := func(what string, pa uint64) error {
		if r, ok := runAt[pa]; ok {
			return fmt.Errorf("kho_vmalloc: %s: page %#x already holds run %d: %w", what, pa, r, unix.EINVAL)
		}
		runAt[pa] = len(runAt)
		return nil
	}
	maxChunks := nruns/VmallocChunkEntries + 1
	for pa, c := v.First, 0; pa != 0; c++ {
		what := fmt.Sprintf("chunk %d at %#x", c, pa)
		if pa%physmem.PageSize != 0 || pa >= maxVmallocPhys {
			return nil, fmt.Errorf("kho_vmalloc: %s: not a page address: %w", what, unix.EINVAL)
		}
		if uint64(c) >= maxChunks {
			return nil, fmt.Errorf("kho_vmalloc: %s: more chunks than %d runs need (%d): %w", what, nruns, maxChunks, unix.EINVAL)
		}
		if err := claimChunk(what, pa); err != nil {
			return nil, err
		}
		b, err := mem.Bytes(pa, physmem.PageSize)
		if err != nil {
			return nil, fmt.Errorf("kho_vmalloc: %s: %w", what, err)
		}
		if len(b) != physmem.PageSize {
			return nil, fmt.Errorf("kho_vmalloc: %s: %d bytes: %w", what, len(b), unix.EFAULT)
		}
		a.Chunks = append(a.Chunks, pa)
		le := binary.LittleEndian
		next := le.Uint64(b)
		i := 0
		for ; i < VmallocChunkEntries; i++ {
			phys := le.Uint64(b[VmallocChunkHeaderSize+8*i:])
			if phys == 0 {
				break
			}
			if uint64(len(a.Runs)) >= nruns {
				return nil, fmt.Errorf("kho_vmalloc: %s entry %d: more than the %d runs of total_pages %d: %w", what, i, nruns, total, unix.EINVAL)
			}
			if phys%run != 0 || phys >= maxVmallocPhys || phys+run > maxVmallocPhys {
				return nil, fmt.Errorf("kho_vmalloc: %s entry %d: %#x is not a %d-byte aligned run: %w", what, i, phys, run, unix.EINVAL)
			}
			if err := claimRun(fmt.Sprintf("%s entry %d", what, i), phys); err != nil {
				return nil, err
			}
			a.Runs = append(a.Runs, phys)
		}
		for j := i + 1; j < VmallocChunkEntries; j++ {
			if le.Uint64(b[VmallocChunkHeaderSize+8*j:]) != 0 {
				return nil, fmt.Errorf("kho_vmalloc: %s: entry %d after the terminator at %d is not zero: %w", what, j, i, unix.EINVAL)
			}
		}
		if i < VmallocChunkEntries && next != 0 {
			return nil, fmt.Errorf("kho_vmalloc: %s holds %d runs, not full, yet links to %#x: %w", what, i, next, unix.EINVAL)
		}
		pa = next
	}
	for i, c := range a.Chunks {
		if r, ok := runAt[c&^(run-1)]; ok {
			return nil, fmt.Errorf("kho_vmalloc: chunk %d at %#x lies in run %d: %w", i, c, r, unix.EINVAL)
		}
	}
	if len(a.Chunks) == 0 {
		return nil, fmt.Errorf("kho_vmalloc: no first chunk: %w", unix.EINVAL)
	}
	if uint64(len(a.Runs)) != nruns {
		return nil, fmt.Errorf("kho_vmalloc: chunks hold %d runs of %d pages, total_pages %d: %w", len(a.Runs), contig, total, unix.EINVAL)
	}
	return a, nil
}

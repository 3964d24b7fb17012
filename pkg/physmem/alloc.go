package physmem

import (
	"cmp"
	"fmt"
	"slices"
	"sync"

	"golang.org/x/sys/unix"
)

// Allocation is one live block of an Allocator.
type Allocation struct {
	Range
	Preserved bool // to be handed over to the next kernel
}

// Allocator hands out page-granular blocks of one Region, lowest address
// first (first fit), so a given sequence of calls always yields the same
// addresses. It is safe for concurrent use.
type Allocator struct {
	region *Region
	mu     sync.Mutex
	allocs []Allocation // sorted by Start, never overlapping
}

// NewAllocator returns an allocator with the whole region free.
func NewAllocator(r *Region) *Allocator { return &Allocator{region: r} }

// Region returns the region the allocator carves up.
func (a *Allocator) Region() *Region { return a.region }

// pageRound rounds size up to whole pages; ok is false if that overflows.
func pageRound(size uint64) (uint64, bool) {
	n := (size + PageSize - 1) &^ (PageSize - 1)
	return n, n >= size
}

// Reserve marks rg busy, e.g. pages the previous kernel preserved, as a
// non-preserved allocation that Free(rg.Start) releases. rg.Start must be
// page aligned; the size is rounded up to whole pages. It fails with
// ErrOutOfRegion outside the region and unix.EBUSY over busy pages.
func (a *Allocator) Reserve(rg Range) error {
	size, ok := pageRound(rg.Size)
	if rg.Start%PageSize != 0 || rg.Size == 0 || !ok {
		return fmt.Errorf("physmem: reserve %v: %w: start must be page aligned, size non-zero", rg, unix.EINVAL)
	}
	rg.Size = size
	if !a.region.Contains(rg.Start, rg.Size) {
		return fmt.Errorf("physmem: reserve %v: %w %v", rg, ErrOutOfRegion, a.region.Range())
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	i, _ := a.search(rg.Start)
	for _, j := range []int{i - 1, i} {
		if j >= 0 && j < len(a.allocs) && a.allocs[j].Overlaps(rg) {
			return fmt.Errorf("physmem: reserve %v: %w: overlaps allocation %v", rg, unix.EBUSY, a.allocs[j].Range)
		}
	}
	a.allocs = slices.Insert(a.allocs, i, Allocation{Range: rg})
	return nil
}

// search returns the index of the first allocation starting at or after pa,
// and whether it starts exactly at pa.
func (a *Allocator) search(pa uint64) (int, bool) {
	return slices.BinarySearchFunc(a.allocs, pa, func(al Allocation, pa uint64) int { return cmp.Compare(al.Start, pa) })
}

// Alloc returns the lowest free block of size bytes rounded up to whole
// pages, zeroed, and records whether it is preserved. It fails with
// unix.ENOMEM when no free run is large enough.
func (a *Allocator) Alloc(size uint64, preserve bool) (pa uint64, mem []byte, err error) {
	return a.AllocAligned(size, PageSize, preserve)
}

// AllocAligned is Alloc of a block whose physical address is a multiple of
// align (a power of two, at least a page): the lowest such free run, as a
// buddy allocator places a block of an order. The search and the insert
// are one step under the lock, so concurrent callers never race for a run.
func (a *Allocator) AllocAligned(size, align uint64, preserve bool) (pa uint64, mem []byte, err error) {
	n, ok := pageRound(size)
	if size == 0 {
		return 0, nil, fmt.Errorf("physmem: alloc 0 bytes: %w", unix.EINVAL)
	}
	if align < PageSize || align&(align-1) != 0 {
		return 0, nil, fmt.Errorf("physmem: alloc %d bytes aligned to %#x: %w: not a power-of-two multiple of the page size", size, align, unix.EINVAL)
	}
	if !ok || n > a.region.Size() {
		return 0, nil, fmt.Errorf("physmem: alloc %d bytes: %w: region %v is smaller", size, unix.ENOMEM, a.region.Range())
	}
	up := func(pa uint64) (uint64, bool) {
		r := (pa + align - 1) &^ (align - 1)
		return r, r >= pa
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	free, ok := up(a.region.Base())
	i := 0
	for ; ok && i < len(a.allocs) && a.allocs[i].Start < free+n; i++ {
		if end := a.allocs[i].End(); end > free {
			free, ok = up(end)
		}
	}
	if !ok || free < a.region.Base() || free > a.region.End() || a.region.End()-free < n {
		return 0, nil, fmt.Errorf("physmem: alloc %d bytes: %w: no free run of %d pages aligned to %#x in %v",
			size, unix.ENOMEM, n/PageSize, align, a.region.Range())
	}
	mem, err = a.region.Bytes(free, n)
	if err != nil {
		return 0, nil, fmt.Errorf("physmem: alloc %d bytes: %w", size, err)
	}
	clear(mem)
	a.allocs = slices.Insert(a.allocs, i, Allocation{Range: Range{free, n}, Preserved: preserve})
	return free, mem, nil
}

// Free releases the whole allocation (from Alloc or Reserve) starting at pa.
// It fails with unix.ENOENT if no allocation starts there.
func (a *Allocator) Free(pa uint64) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	i, found := a.search(pa)
	if !found {
		return fmt.Errorf("physmem: free %#x: %w: no allocation starts there", pa, unix.ENOENT)
	}
	a.allocs = slices.Delete(a.allocs, i, i+1)
	return nil
}

// SetPreserved changes whether the allocation starting at pa is preserved,
// e.g. to hand a block retrieved from the previous kernel on again. It fails
// with unix.ENOENT if no allocation starts there.
func (a *Allocator) SetPreserved(pa uint64, preserved bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	i, found := a.search(pa)
	if !found {
		return fmt.Errorf("physmem: set preserved %#x: %w: no allocation starts there", pa, unix.ENOENT)
	}
	a.allocs[i].Preserved = preserved
	return nil
}

// Preserved returns the ranges of live preserved allocations, sorted, one
// per allocation (adjacent ones are not merged).
func (a *Allocator) Preserved() []Range {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []Range
	for _, al := range a.allocs {
		if al.Preserved {
			out = append(out, al.Range)
		}
	}
	return out
}

// Allocations returns every live allocation, sorted by address.
func (a *Allocator) Allocations() []Allocation {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.allocs)
}

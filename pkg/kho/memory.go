package kho

import (
	"errors"
	"fmt"
	"slices"

	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// Memory is physical memory the incoming side reads a handover from: a
// contiguous physmem.Region (a reserved region, an image file, /dev/mem) or
// a sparse PageStore (a real kernel's dump). Bytes returns the n bytes at
// pa or an error; the slice may alias the memory. Range is the span of
// addresses that may hold data: a preserved block outside it is refused.
type Memory interface {
	Bytes(pa, n uint64) ([]byte, error)
	Range() physmem.Range
}

// MaxPhysAddr bounds every physical address (52 bits, the x86-64
// architectural limit and the width of a radix key's address).
const MaxPhysAddr = 1 << 52

// maxRead bounds a single Bytes request of a PageStore.
const maxRead = 1 << 24

// Errors of the sparse memory and the dump format, for errors.Is.
var (
	// ErrUnavailable: the Memory has no bytes at an address.
	ErrUnavailable = errors.New("kho: memory not available")
	// ErrBadAddress: an address is misaligned or beyond MaxPhysAddr.
	ErrBadAddress = errors.New("kho: bad physical address")
	// ErrBadSize: a page or a kho_data payload has the wrong size.
	ErrBadSize = errors.New("kho: bad size")
)

// contains reports whether [pa, pa+n) lies in mem's range.
func contains(mem Memory, pa, n uint64) bool {
	return mem.Range().Contains(physmem.Range{Start: pa, Size: n})
}

// PageStore is Memory made of separately stored pages, such as a dump a
// guest printed: its range is the whole physical address space, of which
// only the stored pages can be read. Reads may span pages that are all
// present.
type PageStore struct {
	pages map[uint64][]byte
}

// NewPageStore returns an empty store.
func NewPageStore() *PageStore { return &PageStore{pages: make(map[uint64][]byte)} }

// Add stores a copy of page (at most physmem.PageSize bytes, zero-padded)
// at the page-aligned address pa, replacing what was there.
func (s *PageStore) Add(pa uint64, page []byte) error {
	if pa%physmem.PageSize != 0 || pa >= MaxPhysAddr {
		return fmt.Errorf("kho: add page at %#x: %w", pa, ErrBadAddress)
	}
	if len(page) > physmem.PageSize {
		return fmt.Errorf("kho: add page at %#x: %d bytes: %w", pa, len(page), ErrBadSize)
	}
	p := make([]byte, physmem.PageSize)
	copy(p, page)
	s.pages[pa] = p
	return nil
}

// Remove drops the page at pa, as a dump that lacks it.
func (s *PageStore) Remove(pa uint64) { delete(s.pages, pa) }

// Page returns the stored page at pa (aliased), or nil.
func (s *PageStore) Page(pa uint64) []byte { return s.pages[pa] }

// Addresses returns the stored page addresses in ascending order.
func (s *PageStore) Addresses() []uint64 {
	out := make([]uint64, 0, len(s.pages))
	for pa := range s.pages {
		out = append(out, pa)
	}
	slices.Sort(out)
	return out
}

// Clone returns a deep copy, for tests that damage a handover.
func (s *PageStore) Clone() *PageStore {
	c := NewPageStore()
	for pa, p := range s.pages {
		c.pages[pa] = append([]byte(nil), p...)
	}
	return c
}

// Range implements Memory: all of physical memory.
func (s *PageStore) Range() physmem.Range { return physmem.Range{Start: 0, Size: MaxPhysAddr} }

// Bytes implements Memory. A read within one page aliases the store; a
// read across pages is a copy.
func (s *PageStore) Bytes(pa, n uint64) ([]byte, error) {
	if n > maxRead || pa >= MaxPhysAddr || pa+n > MaxPhysAddr {
		return nil, fmt.Errorf("kho: %d bytes at %#x: %w", n, pa, ErrUnavailable)
	}
	if n == 0 {
		return []byte{}, nil
	}
	first := pa &^ (physmem.PageSize - 1)
	off := pa - first
	if off+n <= physmem.PageSize {
		p, ok := s.pages[first]
		if !ok {
			return nil, fmt.Errorf("kho: page %#x: %w", first, ErrUnavailable)
		}
		return p[off : off+n : off+n], nil
	}
	out := make([]byte, 0, n)
	for page := first; uint64(len(out)) < n; page += physmem.PageSize {
		p, ok := s.pages[page]
		if !ok {
			return nil, fmt.Errorf("kho: page %#x: %w", page, ErrUnavailable)
		}
		chunk := p[off:]
		off = 0
		if rest := n - uint64(len(out)); uint64(len(chunk)) > rest {
			chunk = chunk[:rest]
		}
		out = append(out, chunk...)
	}
	return out, nil
}

// NextRAM is the next kernel's RAM: the physical ranges its direct map
// (phys_to_virt) reaches. A Memory holds only the handover; a pointer the
// kernel follows outside it lands either in RAM, where whatever lies there
// decides what the kernel does, or beyond, where it faults.
type NextRAM []physmem.Range

// Holds reports whether [pa, pa+n) lies wholly in RAM.
func (ram NextRAM) Holds(pa, n uint64) bool {
	for _, r := range ram {
		if r.Contains(physmem.Range{Start: pa, Size: n}) {
			return true
		}
	}
	return false
}

// ramMemory is a Memory that knows the next kernel's RAM.
type ramMemory struct {
	Memory
	ram NextRAM
}

// WithNextRAM returns mem, knowing that ram is the next kernel's RAM (the
// handover's own range counts as RAM too).
func WithNextRAM(mem Memory, ram NextRAM) Memory {
	return ramMemory{mem, append(slices.Clone(ram), mem.Range())}
}

// OutsideRead is what a kernel meets reading memory outside the handover.
type OutsideRead int

const (
	// OutsideUnknown: the next kernel's RAM is not known.
	OutsideUnknown OutsideRead = iota
	// OutsideInRAM: RAM the handover does not hold; its content decides.
	OutsideInRAM
	// OutsideBeyondRAM: no RAM; the kernel's read faults.
	OutsideBeyondRAM
)

// Outside says where a read of [pa, pa+n) outside mem lands, when mem
// knows the next kernel's RAM (WithNextRAM).
func Outside(mem Memory, pa, n uint64) OutsideRead {
	m, ok := mem.(ramMemory)
	switch {
	case !ok:
		return OutsideUnknown
	case m.ram.Holds(pa, n):
		return OutsideInRAM
	}
	return OutsideBeyondRAM
}

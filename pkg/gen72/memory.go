package gen72

import (
	"errors"
	"fmt"
	"sort"
)

// PageSize is the x86-64 page size; KHO refuses handovers between kernels
// with different page sizes, so the ABI fixes it.
const PageSize = 4096

// MaxPhysAddr bounds every physical address the reader accepts (52 bits,
// the x86-64 architectural limit and the width of a radix key's address).
const MaxPhysAddr = 1 << 52

// maxRead bounds a single Bytes request of a PageStore.
const maxRead = 1 << 24

// Memory is physical memory: Bytes returns the n bytes at physical address
// pa, or an error if any of them is not available. The slice may alias the
// memory; the reader copies what it keeps. physmem.Region satisfies it.
type Memory interface {
	Bytes(pa, n uint64) ([]byte, error)
}

// Errors that decoding wraps, so callers can tell kinds of damage apart with
// errors.Is.
var (
	// ErrUnavailable: the Memory has no bytes at an address.
	ErrUnavailable = errors.New("gen72: memory not available")
	// ErrBadCompatible: a compatible string is not the one 7.2 writes.
	ErrBadCompatible = errors.New("gen72: incompatible")
	// ErrBadCount: a count is zero where it may not be, exceeds its block or
	// disagrees with the entries found.
	ErrBadCount = errors.New("gen72: bad count")
	// ErrBadSize: a blob-size or header size is too small or too large.
	ErrBadSize = errors.New("gen72: bad size")
	// ErrBadAddress: a physical address is zero where it may not be,
	// misaligned, or beyond MaxPhysAddr.
	ErrBadAddress = errors.New("gen72: bad physical address")
	// ErrBadString: a fixed-size name has no NUL terminator.
	ErrBadString = errors.New("gen72: unterminated string")
	// ErrBadOrder: a radix key encodes no valid page order.
	ErrBadOrder = errors.New("gen72: bad page order")
	// ErrLoop: a linked list or the radix tree visits a page twice.
	ErrLoop = errors.New("gen72: loop")
	// ErrShared: two structures of the handover claim the same page.
	ErrShared = errors.New("gen72: page claimed twice")
	// ErrOverlap: the memory map preserves overlapping blocks.
	ErrOverlap = errors.New("gen72: overlapping preserved blocks")
	// ErrNotPreserved: a structure lies outside the preserved memory.
	ErrNotPreserved = errors.New("gen72: not preserved")
	// ErrDuplicate: two sessions, tokens or FLBs have the same name.
	ErrDuplicate = errors.New("gen72: duplicate")
	// ErrMissing: a required FDT property is absent or malformed.
	ErrMissing = errors.New("gen72: missing or malformed property")
	// ErrTooMany: a structure exceeds the reader's work limits.
	ErrTooMany = errors.New("gen72: too many")
)

// checkPage rejects a physical address that cannot be the start of a
// page-sized kernel allocation (everything KHO and LUO hand over is
// allocated by kho_alloc_preserve, a whole folio).
func checkPage(what string, pa uint64) error {
	switch {
	case pa == 0:
		return fmt.Errorf("%s at %#x: %w: null", what, pa, ErrBadAddress)
	case pa%PageSize != 0:
		return fmt.Errorf("%s at %#x: %w: not page aligned", what, pa, ErrBadAddress)
	case pa >= MaxPhysAddr:
		return fmt.Errorf("%s at %#x: %w: beyond %#x", what, pa, ErrBadAddress, uint64(MaxPhysAddr))
	}
	return nil
}

// read fetches exactly n bytes and checks the Memory kept its promise.
func read(mem Memory, what string, pa, n uint64) ([]byte, error) {
	b, err := mem.Bytes(pa, n)
	if err != nil {
		return nil, fmt.Errorf("%s: read %d bytes at %#x: %w", what, n, pa, err)
	}
	if uint64(len(b)) != n {
		return nil, fmt.Errorf("%s: read %d bytes at %#x: got %d: %w", what, n, pa, len(b), ErrUnavailable)
	}
	return b, nil
}

// PageStore is Memory made of separately stored pages, such as a dump a
// guest printed. Reads may span pages that are all present.
type PageStore struct {
	pages map[uint64][]byte
}

// NewPageStore returns an empty store.
func NewPageStore() *PageStore { return &PageStore{pages: make(map[uint64][]byte)} }

// Add stores a copy of page (at most PageSize bytes, zero-padded) at the
// page-aligned address pa, replacing what was there.
func (s *PageStore) Add(pa uint64, page []byte) error {
	if pa%PageSize != 0 || pa >= MaxPhysAddr {
		return fmt.Errorf("gen72: add page at %#x: %w", pa, ErrBadAddress)
	}
	if len(page) > PageSize {
		return fmt.Errorf("gen72: add page at %#x: %d bytes: %w", pa, len(page), ErrBadSize)
	}
	p := make([]byte, PageSize)
	copy(p, page)
	s.pages[pa] = p
	return nil
}

// Page returns the stored page at pa (aliased), or nil.
func (s *PageStore) Page(pa uint64) []byte { return s.pages[pa] }

// Addresses returns the stored page addresses in ascending order.
func (s *PageStore) Addresses() []uint64 {
	out := make([]uint64, 0, len(s.pages))
	for pa := range s.pages {
		out = append(out, pa)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
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

// Bytes implements Memory. A read within one page aliases the store; a
// read across pages is a copy.
func (s *PageStore) Bytes(pa, n uint64) ([]byte, error) {
	if n > maxRead || pa >= MaxPhysAddr || pa+n > MaxPhysAddr {
		return nil, fmt.Errorf("gen72: %d bytes at %#x: %w", n, pa, ErrUnavailable)
	}
	if n == 0 {
		return []byte{}, nil
	}
	first := pa &^ (PageSize - 1)
	off := pa - first
	if off+n <= PageSize {
		p, ok := s.pages[first]
		if !ok {
			return nil, fmt.Errorf("gen72: page %#x: %w", first, ErrUnavailable)
		}
		return p[off : off+n : off+n], nil
	}
	out := make([]byte, 0, n)
	for page := first; uint64(len(out)) < n; page += PageSize {
		p, ok := s.pages[page]
		if !ok {
			return nil, fmt.Errorf("gen72: page %#x: %w", page, ErrUnavailable)
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

// cstring returns the NUL-terminated string at the start of field, or an
// error if field holds no NUL (the kernel writes these with strscpy, which
// always terminates).
func cstring(what string, field []byte) (string, error) {
	for i, c := range field {
		if c == 0 {
			return string(field[:i]), nil
		}
	}
	return "", fmt.Errorf("%s %q: %w in %d bytes", what, field, ErrBadString, len(field))
}

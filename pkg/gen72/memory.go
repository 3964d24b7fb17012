package gen72

import (
	"errors"
	"fmt"

	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// PageSize is the x86-64 page size.
const PageSize = physmem.PageSize

// MaxPhysAddr bounds every physical address the reader accepts.
const MaxPhysAddr = kho.MaxPhysAddr

// maxRead bounds a single claim.
const maxRead = 1 << 24

// Memory is physical memory: Bytes returns the n bytes at physical address
// pa, or an error if any of them is not available. The slice may alias the
// memory; the reader copies what it keeps. physmem.Region satisfies it.
type Memory = kho.Memory

// Errors that decoding wraps, so callers can tell kinds of damage apart with
// errors.Is.
var (
	// ErrUnavailable: the Memory has no bytes at an address.
	ErrUnavailable = kho.ErrUnavailable
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

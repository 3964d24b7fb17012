package physmem

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/kho-sim/kho-sim/pkg/kernel"
)

// PageSize is the granularity of regions and allocations: the kernel's
// page.
const PageSize = kernel.PageSize

// Range is a span of physical addresses [Start, Start+Size).
type Range struct {
	Start, Size uint64
}

// End returns the first address after the range.
func (r Range) End() uint64 { return r.Start + r.Size }

// last returns the last address in a non-empty range.
func (r Range) last() uint64 { return r.Start + r.Size - 1 }

// Overlaps reports whether r and o share at least one address.
func (r Range) Overlaps(o Range) bool {
	return r.Size > 0 && o.Size > 0 && r.Start <= o.last() && o.Start <= r.last()
}

// Contains reports whether every address of o lies in r. It never overflows.
func (r Range) Contains(o Range) bool {
	return o.Start >= r.Start && o.Size <= r.Size && o.Start-r.Start <= r.Size-o.Size
}

// String formats the range with an inclusive end, as /proc/iomem does.
func (r Range) String() string {
	if r.Size == 0 {
		return fmt.Sprintf("[%#x empty]", r.Start)
	}
	return fmt.Sprintf("[%#x-%#x]", r.Start, r.last())
}

// valid reports whether the range is non-empty and does not wrap.
func (r Range) valid() bool { return r.Size > 0 && r.Start+r.Size-1 >= r.Start }

// ParseSize parses a size or address as the kernel's memparse() does:
// "4096", "0x1000", "16M", "1G" (suffixes K, M, G, T, P, E in either case).
// Like the kernel, a leading 0 means octal. Unlike the kernel, it fails on
// trailing text and on overflow instead of ignoring them.
func ParseSize(s string) (uint64, error) {
	digits, base, shift := s, 10, 0
	switch {
	case len(s) > 2 && s[0] == '0' && upper(s[1]) == 'X':
		digits, base = s[2:], 16
	case len(s) > 1 && s[0] == '0':
		base = 8
	}
	if n := len(digits); n > 0 && !isDigit(digits[n-1], base) { // "0x1E" has no suffix
		if i := strings.IndexByte("KMGTPE", upper(digits[n-1])); i >= 0 {
			digits, shift = digits[:n-1], 10*(i+1)
		}
	}
	v, err := strconv.ParseUint(digits, base, 64)
	if err != nil {
		return 0, fmt.Errorf("physmem: parse size %q: %w", s, err)
	}
	if v > math.MaxUint64>>shift {
		return 0, fmt.Errorf("physmem: parse size %q: %w", s, strconv.ErrRange)
	}
	return v << shift, nil
}

func upper(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

func isDigit(c byte, base int) bool {
	return strings.IndexByte("0123456789ABCDEF"[:base], upper(c)) >= 0
}

// ParseRegion parses "SIZE@ADDR", e.g. "16M@0x10000000". The range must be
// non-empty and must not wrap around the address space.
func ParseRegion(s string) (Range, error) {
	size, addr, ok := strings.Cut(s, "@")
	if !ok {
		return Range{}, fmt.Errorf("physmem: parse region %q: want SIZE@ADDR, e.g. 16M@0x10000000", s)
	}
	return parseRange(s, size, addr)
}

func parseRange(s, size, addr string) (Range, error) {
	var r Range
	var err error
	if r.Size, err = ParseSize(size); err != nil {
		return Range{}, fmt.Errorf("physmem: region %q: %w", s, err)
	}
	if r.Start, err = ParseSize(addr); err != nil {
		return Range{}, fmt.Errorf("physmem: region %q: %w", s, err)
	}
	if !r.valid() {
		return Range{}, fmt.Errorf("physmem: region %q: empty or wraps around the address space", s)
	}
	return r, nil
}

// MemmapArg returns the kernel parameter reserving r, e.g.
// "memmap=16M$0x10000000".
func MemmapArg(r Range) string {
	size, suffix := r.Size, ""
	for _, s := range []string{"K", "M", "G"} {
		if size == 0 || size%1024 != 0 {
			break
		}
		size, suffix = size>>10, s
	}
	return fmt.Sprintf("memmap=%d%s$%#x", size, suffix, r.Start)
}

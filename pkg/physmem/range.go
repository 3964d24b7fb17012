package physmem

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// PageSize is the granularity of regions and allocations (x86-64 base page).
const PageSize = 4096

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

func (r Range) pageAligned() bool { return r.Start%PageSize == 0 && r.Size%PageSize == 0 }

var errSyntax = errors.New("invalid size")

// memparse parses a leading number the way the kernel's memparse() does:
// C-style base (0x hex, leading 0 octal, else decimal) and an optional
// K/M/G/T/P/E suffix (either case). It returns the unparsed rest and, unlike
// the kernel, fails on overflow instead of wrapping.
func memparse(s string) (uint64, string, error) {
	base, digits := 10, s
	switch {
	case len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && isDigit(s[2], 16):
		base, digits = 16, s[2:]
	case len(s) > 1 && s[0] == '0':
		base = 8
	}
	n := 0
	for n < len(digits) && isDigit(digits[n], base) {
		n++
	}
	if n == 0 {
		return 0, s, fmt.Errorf("%q: %w: no number", s, errSyntax)
	}
	v, err := strconv.ParseUint(digits[:n], base, 64)
	if err != nil {
		return 0, s, fmt.Errorf("%q: %w: %w", s, errSyntax, err)
	}
	rest := digits[n:]
	if len(rest) > 0 {
		if shift := strings.IndexByte("KMGTPE", upper(rest[0])); shift >= 0 {
			shift = 10 * (shift + 1)
			if v > ^uint64(0)>>shift {
				return 0, s, fmt.Errorf("%q: %w: overflows 64 bits", s, errSyntax)
			}
			v <<= shift
			rest = rest[1:]
		}
	}
	return v, rest, nil
}

func upper(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

func isDigit(c byte, base int) bool {
	switch {
	case '0' <= c && c <= '9':
		return int(c-'0') < base
	case base == 16:
		c = upper(c)
		return 'A' <= c && c <= 'F'
	}
	return false
}

// ParseSize parses a size or address as the kernel's memparse() does:
// "4096", "0x1000", "16M", "1G" (suffixes K, M, G, T, P, E in either case).
// Like the kernel, a leading 0 means octal. The whole string must be used.
func ParseSize(s string) (uint64, error) {
	v, rest, err := memparse(s)
	if err != nil {
		return 0, fmt.Errorf("physmem: parse size: %w", err)
	}
	if rest != "" {
		return 0, fmt.Errorf("physmem: parse size %q: %w: trailing %q", s, errSyntax, rest)
	}
	return v, nil
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
	size := strconv.FormatUint(r.Size, 10)
	for _, u := range []struct {
		suffix string
		shift  uint
	}{{"G", 30}, {"M", 20}, {"K", 10}} {
		if r.Size != 0 && r.Size%(1<<u.shift) == 0 {
			size = strconv.FormatUint(r.Size>>u.shift, 10) + u.suffix
			break
		}
	}
	return fmt.Sprintf("memmap=%s$%#x", size, r.Start)
}

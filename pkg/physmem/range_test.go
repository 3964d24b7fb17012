package physmem

import (
	"math"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    uint64
		wantErr bool
	}{
		{"4096", 4096, false},
		{"0x1000", 0x1000, false},
		{"0X1000", 0x1000, false},
		{"0x10000000", 0x10000000, false},
		{"16M", 16 << 20, false},
		{"16m", 16 << 20, false},
		{"4K", 4096, false},
		{"1G", 1 << 30, false},
		{"2T", 2 << 40, false},
		{"1P", 1 << 50, false},
		{"1E", 1 << 60, false},
		{"0x10M", 16 << 20, false},
		{"0x1E", 0x1e, false}, // E is a hex digit, as for the kernel
		{"010", 8, false},     // octal, as for the kernel
		{"0", 0, false},
		{"18446744073709551615", math.MaxUint64, false},
		{"", 0, true},
		{"M", 0, true},
		{"16MB", 0, true},
		{"0x", 0, true},
		{"08", 0, true},
		{"-1", 0, true},
		{"+1", 0, true},
		{" 1", 0, true},
		{"18446744073709551616", 0, true},
		{"16E", 0, true}, // 2^64 overflows
		{"0x1_000", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseSize(%q) = %#x, %v; want %#x, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseRegion(t *testing.T) {
	tests := []struct {
		in      string
		want    Range
		wantErr bool
	}{
		{"16M@0x10000000", Range{0x10000000, 16 << 20}, false},
		{"0x1000000@0x10000000", Range{0x10000000, 0x1000000}, false},
		{"4096@256M", Range{256 << 20, 4096}, false},
		{"16M", Range{}, true},
		{"16M$0x10000000", Range{}, true},
		{"0@0x10000000", Range{}, true},
		{"16M@", Range{}, true},
		{"@0x1000", Range{}, true},
		{"16M@0x10000000@1", Range{}, true},
		{"8K@0xfffffffffffff000", Range{}, true},
		{"4K@0xfffffffffffff000", Range{0xfffffffffffff000, 4096}, false},
	}
	for _, tt := range tests {
		got, err := ParseRegion(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseRegion(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestRangeMethods(t *testing.T) {
	r := Range{0x1000, 0x2000} // [0x1000-0x2fff]
	tests := []struct {
		o                  Range
		overlaps, contains bool
	}{
		{Range{0x1000, 0x2000}, true, true},
		{Range{0x1800, 0x100}, true, true},
		{Range{0x2fff, 1}, true, true},
		{Range{0x3000, 1}, false, false},
		{Range{0x0fff, 1}, false, false},
		{Range{0x0fff, 2}, true, false},
		{Range{0x2fff, 2}, true, false},
		{Range{0, 0x10000}, true, false},
		{Range{0x1000, 0}, false, true},
		{Range{0x2fff, math.MaxUint64}, true, false}, // would wrap: never contained
	}
	for _, tt := range tests {
		if got := r.Overlaps(tt.o); got != tt.overlaps {
			t.Errorf("%v.Overlaps(%v) = %v", r, tt.o, got)
		}
		if got := tt.o.Overlaps(r); got != tt.overlaps && tt.o.valid() {
			t.Errorf("%v.Overlaps(%v) = %v", tt.o, r, got)
		}
		if got := r.Contains(tt.o); got != tt.contains {
			t.Errorf("%v.Contains(%v) = %v", r, tt.o, got)
		}
	}
	if r.End() != 0x3000 {
		t.Errorf("End() = %#x", r.End())
	}
	for _, tt := range []struct {
		r    Range
		want string
	}{
		{Range{0x10000000, 0x1000}, "[0x10000000-0x10000fff]"},
		{Range{0x10000000, 0}, "[0x10000000 empty]"},
	} {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

func TestMemmapArg(t *testing.T) {
	tests := []struct {
		r    Range
		want string
	}{
		{Range{0x10000000, 16 << 20}, "memmap=16M$0x10000000"},
		{Range{0x40000000, 2 << 30}, "memmap=2G$0x40000000"},
		{Range{0x10000000, 12 << 10}, "memmap=12K$0x10000000"},
		{Range{0x10000000, 100}, "memmap=100$0x10000000"},
	}
	for _, tt := range tests {
		got := MemmapArg(tt.r)
		if got != tt.want {
			t.Errorf("MemmapArg(%v) = %q, want %q", tt.r, got, tt.want)
		}
		back, ok, err := MemmapFromCmdline(got)
		if err != nil || !ok || back != tt.r {
			t.Errorf("MemmapFromCmdline(%q) = %v, %v, %v; want %v", got, back, ok, err, tt.r)
		}
	}
}

package physmem

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestNew(t *testing.T) {
	tests := []struct {
		name string
		base uint64
		size int
		ok   bool
	}{
		{"one page", 0x10000000, PageSize, true},
		{"zero base", 0, 4 * PageSize, true},
		{"empty", 0x10000000, 0, false},
		{"unaligned size", 0x10000000, PageSize + 1, false},
		{"unaligned base", 0x10000800, PageSize, false},
		{"wraps", math.MaxUint64 - PageSize + 1, 2 * PageSize, false},
		{"beyond int64 offsets", 1 << 63, PageSize, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := New(tt.base, make([]byte, tt.size))
			if (err == nil) != tt.ok {
				t.Fatalf("New(%#x, %d) = %v", tt.base, tt.size, err)
			}
			if err != nil {
				if !errors.Is(err, unix.EINVAL) || r != nil {
					t.Errorf("error %v, region %v; want EINVAL, nil", err, r)
				}
				return
			}
			if r.Base() != tt.base || r.Size() != uint64(tt.size) || r.End() != tt.base+uint64(tt.size) {
				t.Errorf("region %v, want base %#x size %d", r.Range(), tt.base, tt.size)
			}
		})
	}
}

func TestBytes(t *testing.T) {
	const base = 0x10000000
	mem := make([]byte, 4*PageSize)
	r, err := New(base, mem)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		pa, n uint64
		ok    bool
	}{
		{base, 4 * PageSize, true},
		{base, 1, true},
		{base + 4*PageSize - 1, 1, true},
		{base + 4*PageSize, 0, true},
		{base + 100, 0, true},
		{base + 4*PageSize, 1, false},
		{base + 4*PageSize - 1, 2, false},
		{base - 1, 1, false},
		{base - 1, 2, false},
		{0, 1, false},
		{base, 4*PageSize + 1, false},
		{base + 8, math.MaxUint64, false},       // pa+n wraps
		{math.MaxUint64 - 10, 100, false},       // pa+n wraps
		{math.MaxUint64, math.MaxUint64, false}, // both huge
		{base + 4*PageSize + 1, math.MaxUint64, false},
	}
	for _, tt := range tests {
		if got := r.Contains(tt.pa, tt.n); got != tt.ok {
			t.Errorf("Contains(%#x, %#x) = %v, want %v", tt.pa, tt.n, got, tt.ok)
		}
		b, err := r.Bytes(tt.pa, tt.n)
		if !tt.ok {
			if !errors.Is(err, ErrOutOfRegion) || b != nil {
				t.Errorf("Bytes(%#x, %#x) = len %d, %v; want ErrOutOfRegion", tt.pa, tt.n, len(b), err)
			} else if want := fmt.Sprintf("%#x", tt.pa); !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "0x10003fff") {
				t.Errorf("error %q does not name %s and the region", err, want)
			}
			continue
		}
		if err != nil || uint64(len(b)) != tt.n || uint64(cap(b)) != tt.n {
			t.Errorf("Bytes(%#x, %#x) = len %d cap %d, %v", tt.pa, tt.n, len(b), cap(b), err)
			continue
		}
		if tt.n > 0 {
			b[0] = 0xa5
			if mem[tt.pa-base] != 0xa5 {
				t.Errorf("Bytes(%#x) does not alias the memory", tt.pa)
			}
		}
	}
}

func TestCloseRegion(t *testing.T) {
	r, err := New(0, make([]byte, PageSize))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := r.Close(); err != nil {
			t.Errorf("Close #%d: %v", i+1, err)
		}
	}
	if _, err := r.Bytes(0, 1); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Bytes after Close: %v, want os.ErrClosed", err)
	}
}

func TestOpenFile(t *testing.T) {
	const base, size = 0x10000000, 16 * PageSize
	path := filepath.Join(t.TempDir(), "mem")
	r, err := OpenFile(path, base, size)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Size() != size {
		t.Fatalf("file not created at %d bytes: %v, %v", size, st, err)
	}
	b, err := r.Bytes(base+3*PageSize+7, 5)
	if err != nil {
		t.Fatal(err)
	}
	copy(b, "hello")
	last, _ := r.Bytes(base+size-1, 1)
	last[0] = 0x5a
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	// The byte at file offset k is physical address base+k.
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(raw[3*PageSize+7 : 3*PageSize+12]); got != "hello" {
		t.Errorf("file at offset %#x = %q, want hello", 3*PageSize+7, got)
	}

	r, err = OpenFile(path, base, size)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = r.Bytes(base+3*PageSize+7, 5)
	last, _ = r.Bytes(base+size-1, 1)
	if string(b) != "hello" || last[0] != 0x5a {
		t.Errorf("after reopen: %q, %#x; want hello, 0x5a", b, last[0])
	}
	r.Close()

	// A larger file is kept whole; only its first size bytes are mapped.
	r, err = OpenFile(path, 0, 2*PageSize)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st.Size() != size {
		t.Errorf("file shrunk to %d bytes", st.Size())
	}
	if _, err := r.Bytes(2*PageSize, 1); !errors.Is(err, ErrOutOfRegion) {
		t.Errorf("Bytes past the mapped size: %v", err)
	}
	r.Close()

	// A smaller file is grown and keeps its contents.
	r, err = OpenFile(path, base, 2*size)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, _ = r.Bytes(base+3*PageSize+7, 5)
	tail, _ := r.Bytes(base+size, size)
	if st, _ := os.Stat(path); st.Size() != 2*size || string(b) != "hello" || tail[0] != 0 {
		t.Errorf("grown file: size %d, %q, tail %#x", st.Size(), b, tail[0])
	}
}

func TestOpenFileErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name       string
		path       string
		base, size uint64
		want       error
	}{
		{"unaligned size", filepath.Join(dir, "a"), 0, 100, unix.EINVAL},
		{"unaligned base", filepath.Join(dir, "a"), 10, PageSize, unix.EINVAL},
		{"empty", filepath.Join(dir, "a"), 0, 0, unix.EINVAL},
		{"missing dir", filepath.Join(dir, "no", "a"), 0, PageSize, os.ErrNotExist},
		{"directory", dir, 0, PageSize, unix.EISDIR},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := OpenFile(tt.path, tt.base, tt.size)
			if !errors.Is(err, tt.want) || r != nil {
				t.Errorf("OpenFile = %v, %v; want %v", r, err, tt.want)
			}
		})
	}
}

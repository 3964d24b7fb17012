package physmem

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

const testBase = 0x10000000

func newTestAllocator(t testing.TB, pages int) (*Allocator, []byte) {
	t.Helper()
	mem := bytes.Repeat([]byte{0xff}, pages*PageSize)
	r, err := New(testBase, mem)
	if err != nil {
		t.Fatal(err)
	}
	return NewAllocator(r), mem
}

func page(n uint64) uint64 { return testBase + n*PageSize }

func TestAllocFirstFit(t *testing.T) {
	a, _ := newTestAllocator(t, 16)
	type step struct {
		op       string // "alloc", "free", "reserve"
		size     uint64 // bytes for alloc/reserve
		pa       uint64 // free/reserve address, or expected alloc address
		preserve bool
	}
	steps := []step{
		{"alloc", 1, page(0), true},
		{"alloc", 3*PageSize - 1, page(1), false},
		{"alloc", PageSize, page(4), true},
		{"free", 0, page(1), false},
		{"alloc", 2 * PageSize, page(1), true},  // lowest hole that fits
		{"alloc", 2 * PageSize, page(5), false}, // the 1-page hole at 3 is too small
		{"alloc", 1, page(3), false},            // but a page fits
		{"reserve", 3 * PageSize, page(8), false},
		{"alloc", 2 * PageSize, page(11), true}, // skips the 1-page hole at 7 and the reservation
		{"free", 0, page(8), false},
		{"alloc", 4 * PageSize, page(7), false},
	}
	for i, s := range steps {
		var err error
		switch s.op {
		case "alloc":
			var pa uint64
			var mem []byte
			pa, mem, err = a.Alloc(s.size, s.preserve)
			want, _ := pageRound(s.size)
			if err == nil && (pa != s.pa || uint64(len(mem)) != want || uint64(cap(mem)) != want) {
				t.Fatalf("step %d: Alloc(%d) = %#x, len %d cap %d; want %#x, %d", i, s.size, pa, len(mem), cap(mem), s.pa, want)
			}
		case "free":
			err = a.Free(s.pa)
		case "reserve":
			err = a.Reserve(Range{s.pa, s.size})
		}
		if err != nil {
			t.Fatalf("step %d %s: %v", i, s.op, err)
		}
	}
	want := []Allocation{
		{Range{page(0), PageSize}, true},
		{Range{page(1), 2 * PageSize}, true},
		{Range{page(3), PageSize}, false},
		{Range{page(4), PageSize}, true},
		{Range{page(5), 2 * PageSize}, false},
		{Range{page(7), 4 * PageSize}, false},
		{Range{page(11), 2 * PageSize}, true},
	}
	if got := a.Allocations(); !slices.Equal(got, want) {
		t.Errorf("Allocations() =\n%v\nwant\n%v", got, want)
	}
	// Adjacent preserved allocations stay separate.
	wantPreserved := []Range{{page(0), PageSize}, {page(1), 2 * PageSize}, {page(4), PageSize}, {page(11), 2 * PageSize}}
	if got := a.Preserved(); !slices.Equal(got, wantPreserved) {
		t.Errorf("Preserved() = %v, want %v", got, wantPreserved)
	}
	if err := a.SetPreserved(page(3), true); err != nil {
		t.Fatal(err)
	}
	if err := a.SetPreserved(page(0), false); err != nil {
		t.Fatal(err)
	}
	wantPreserved = []Range{{page(1), 2 * PageSize}, {page(3), PageSize}, {page(4), PageSize}, {page(11), 2 * PageSize}}
	if got := a.Preserved(); !slices.Equal(got, wantPreserved) {
		t.Errorf("after SetPreserved: Preserved() = %v, want %v", got, wantPreserved)
	}
	if err := a.SetPreserved(page(2), true); !errors.Is(err, unix.ENOENT) {
		t.Errorf("SetPreserved(mid allocation) = %v, want ENOENT", err)
	}
	if a.Region().Base() != testBase {
		t.Errorf("Region().Base() = %#x", a.Region().Base())
	}
}

func TestAllocZeroes(t *testing.T) {
	a, mem := newTestAllocator(t, 4)
	pa, b, err := a.Alloc(PageSize+1, false)
	if err != nil {
		t.Fatal(err)
	}
	if pa != testBase || !bytes.Equal(b, make([]byte, 2*PageSize)) {
		t.Fatalf("Alloc returned %#x, not zeroed", pa)
	}
	if mem[2*PageSize] != 0xff || mem[len(mem)-1] != 0xff {
		t.Error("Alloc zeroed memory outside the allocation")
	}
	copy(b, "dirty")
	if err := a.Free(pa); err != nil {
		t.Fatal(err)
	}
	if _, b, _ = a.Alloc(1, false); b[0] != 0 {
		t.Error("reused memory not zeroed")
	}
}

func TestAllocErrors(t *testing.T) {
	a, _ := newTestAllocator(t, 4)
	tests := []struct {
		size uint64
		want error
	}{
		{0, unix.EINVAL},
		{5 * PageSize, unix.ENOMEM},
		{math.MaxUint64, unix.ENOMEM},
		{math.MaxUint64 - PageSize + 2, unix.ENOMEM}, // rounding up overflows
	}
	for _, tt := range tests {
		if pa, mem, err := a.Alloc(tt.size, false); !errors.Is(err, tt.want) || pa != 0 || mem != nil {
			t.Errorf("Alloc(%d) = %#x, %d bytes, %v; want %v", tt.size, pa, len(mem), err, tt.want)
		}
	}
	// Exhaustion: four pages fit, the fifth does not, freeing one makes room.
	for i := range 4 {
		if pa, _, err := a.Alloc(1, false); err != nil || pa != page(uint64(i)) {
			t.Fatalf("Alloc #%d = %#x, %v", i, pa, err)
		}
	}
	if _, _, err := a.Alloc(1, false); !errors.Is(err, unix.ENOMEM) {
		t.Fatalf("Alloc in a full region: %v, want ENOMEM", err)
	}
	if err := a.Free(page(2)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Alloc(2*PageSize, false); !errors.Is(err, unix.ENOMEM) {
		t.Errorf("Alloc of 2 pages with 1 free: %v, want ENOMEM", err)
	}
	if pa, _, err := a.Alloc(1, false); err != nil || pa != page(2) {
		t.Errorf("Alloc after Free = %#x, %v; want %#x", pa, err, page(2))
	}
	for _, pa := range []uint64{page(4), testBase + 1, 0, page(0) + PageSize/2} {
		if err := a.Free(pa); !errors.Is(err, unix.ENOENT) {
			t.Errorf("Free(%#x) = %v, want ENOENT", pa, err)
		}
	}
	if err := a.Free(page(0)); err != nil {
		t.Fatal(err)
	}
	if err := a.Free(page(0)); !errors.Is(err, unix.ENOENT) {
		t.Errorf("double Free = %v, want ENOENT", err)
	}
}

func TestReserve(t *testing.T) {
	a, _ := newTestAllocator(t, 8)
	if err := a.Reserve(Range{page(2), 2 * PageSize}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		rg   Range
		want error
	}{
		{"same", Range{page(2), PageSize}, unix.EBUSY},
		{"overlaps start", Range{page(1), 2 * PageSize}, unix.EBUSY},
		{"overlaps end", Range{page(3), 2 * PageSize}, unix.EBUSY},
		{"covers", Range{page(0), 8 * PageSize}, unix.EBUSY},
		{"rounded into busy", Range{page(1), PageSize + 1}, unix.EBUSY},
		{"before region", Range{testBase - PageSize, PageSize}, ErrOutOfRegion},
		{"past region", Range{page(7), 2 * PageSize}, ErrOutOfRegion},
		{"wraps", Range{page(7), math.MaxUint64 - page(7) + PageSize}, ErrOutOfRegion},
		{"unaligned", Range{page(5) + 1, PageSize}, unix.EINVAL},
		{"empty", Range{page(5), 0}, unix.EINVAL},
		{"size overflows rounding", Range{page(5), math.MaxUint64}, unix.EINVAL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := a.Reserve(tt.rg); !errors.Is(err, tt.want) {
				t.Errorf("Reserve(%v) = %v, want %v", tt.rg, err, tt.want)
			}
		})
	}
	if err := a.Reserve(Range{page(4), 1}); err != nil { // adjacent, rounded up to a page
		t.Fatal(err)
	}
	want := []Allocation{{Range{page(2), 2 * PageSize}, false}, {Range{page(4), PageSize}, false}}
	if got := a.Allocations(); !slices.Equal(got, want) {
		t.Errorf("Allocations() = %v, want %v", got, want)
	}
	if pa, _, err := a.Alloc(3*PageSize, true); err != nil || pa != page(5) {
		t.Errorf("Alloc(3 pages) = %#x, %v; want %#x", pa, err, page(5))
	}
	if err := a.Free(page(2)); err != nil {
		t.Fatal(err)
	}
	if pa, _, err := a.Alloc(4*PageSize, false); err != nil || pa != page(0) {
		t.Errorf("Alloc(4 pages) after freeing the reservation = %#x, %v", pa, err)
	}
}

func TestAllocConcurrent(t *testing.T) {
	a, _ := newTestAllocator(t, 256)
	const workers, rounds = 8, 200
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var live []uint64
			var mems [][]byte
			for i := range rounds {
				size := uint64(1+(w+i)%4) * PageSize
				pa, mem, err := a.Alloc(size, i%2 == 0)
				if err != nil {
					errs <- fmt.Errorf("worker %d round %d: %w", w, i, err)
					return
				}
				for j := range mem {
					mem[j] = byte(w)
				}
				live, mems = append(live, pa), append(mems, mem)
				if len(live) > 4 || i == rounds-1 {
					for k, m := range mems {
						if !bytes.Equal(m, bytes.Repeat([]byte{byte(w)}, len(m))) {
							errs <- fmt.Errorf("worker %d: block %#x overwritten by another", w, live[k])
							return
						}
						if err := a.Free(live[k]); err != nil {
							errs <- err
							return
						}
					}
					live, mems = live[:0], mems[:0]
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := a.Allocations(); len(got) != 0 {
		t.Errorf("%d allocations left: %v", len(got), got)
	}
}

func BenchmarkAlloc(b *testing.B) {
	for _, live := range []int{0, 1000} {
		b.Run(fmt.Sprintf("live=%d", live), func(b *testing.B) {
			a, _ := newTestAllocator(b, 16384) // 64 MiB
			for i := range live {              // every other page busy: worst case first fit scan
				if err := a.Reserve(Range{page(uint64(2 * i)), PageSize}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				pa, _, err := a.Alloc(2*PageSize, true)
				if err != nil {
					b.Fatal(err)
				}
				if err := a.Free(pa); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestAllocAligned: a block lands at the lowest free address that is a
// multiple of its alignment, past every allocation in the way, and bad
// alignments or an exhausted region fail with EINVAL or ENOMEM.
func TestAllocAligned(t *testing.T) {
	const base = 0x10000000
	r, err := OpenFile(filepath.Join(t.TempDir(), "mem"), base, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	a := NewAllocator(r)
	steps := []struct {
		size, align uint64
		want        uint64
		err         error
	}{
		{PageSize, PageSize, base, nil},                  // lowest page
		{4 * PageSize, 4 * PageSize, base + 0x4000, nil}, // skips the taken page to its alignment
		{PageSize, PageSize, base + 0x1000, nil},         // the hole before it
		{2 * PageSize, 2 * PageSize, base + 0x2000, nil},
		{16 * PageSize, 16 * PageSize, base + 0x10000, nil},
		{PageSize, 3 * PageSize, 0, unix.EINVAL},
		{PageSize, 512, 0, unix.EINVAL},
		{1 << 20, 1 << 20, 0, unix.ENOMEM},
	}
	for i, s := range steps {
		pa, mem, err := a.AllocAligned(s.size, s.align, true)
		if !errors.Is(err, s.err) || (err == nil && (pa != s.want || uint64(len(mem)) != s.size)) {
			t.Errorf("step %d: AllocAligned(%#x, %#x) = %#x, %d bytes, %v; want %#x, %v", i, s.size, s.align, pa, len(mem), err, s.want, s.err)
		}
	}
}

package kho

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// pageMem is physical memory made of separate pages, for hostile layouts
// (and the fuzz target) without a region.
type pageMem map[uint64][]byte

func (m pageMem) Bytes(pa, n uint64) ([]byte, error) {
	p, ok := m[pa&^(physmem.PageSize-1)]
	if !ok || pa%physmem.PageSize+n > physmem.PageSize {
		return nil, fmt.Errorf("no memory at %#x+%d: %w", pa, n, unix.EFAULT)
	}
	return p[pa%physmem.PageSize:][:n], nil
}

func (m pageMem) page(pa uint64) []byte {
	if m[pa] == nil {
		m[pa] = make([]byte, physmem.PageSize)
	}
	return m[pa]
}

// chunkPage writes a chunk: next, then the run addresses.
func (m pageMem) chunkPage(pa, next uint64, runs ...uint64) {
	p := m.page(pa)
	binary.LittleEndian.PutUint64(p, next)
	for i, r := range runs {
		binary.LittleEndian.PutUint64(p[VmallocChunkHeaderSize+8*i:], r)
	}
}

func TestVmallocDescriptorLayout(t *testing.T) {
	// struct kho_vmalloc: u64 first at 0, unsigned int total_pages at 8,
	// unsigned short flags at 12 and order at 14, 16 bytes.
	v := Vmalloc{First: 0x0102030405060708, TotalPages: 0x11121314, Flags: 0x2122, Order: 0x3132}
	b := make([]byte, VmallocSize)
	v.Put(b)
	want := []byte{8, 7, 6, 5, 4, 3, 2, 1, 0x14, 0x13, 0x12, 0x11, 0x22, 0x21, 0x32, 0x31}
	if !bytes.Equal(b, want) {
		t.Errorf("Put: % x, want % x", b, want)
	}
	got, err := ParseVmalloc(b)
	if err != nil || got != v {
		t.Errorf("ParseVmalloc: %+v, %v, want %+v", got, err, v)
	}
	if _, err := ParseVmalloc(b[:15]); !errors.Is(err, unix.EINVAL) {
		t.Errorf("ParseVmalloc of 15 bytes: %v, want EINVAL", err)
	}
	// KHO_VMALLOC_SIZE: (PAGE_SIZE - sizeof(struct kho_vmalloc_hdr)) / sizeof(u64).
	if VmallocChunkEntries != 511 {
		t.Errorf("KHO_VMALLOC_SIZE %d, want 511", VmallocChunkEntries)
	}
}

// TestWriteVmallocRoundTrip writes areas of several sizes through a kho-v4
// Outgoing, as vcalloc and kho_preserve_vmalloc do, and reads them back
// from the region: same bytes, and every chunk and page in the radix tree
// the next kernel receives. kho_preserve_vmalloc opens a new chunk as soon
// as one is full, so 511 runs take two chunks, the second empty.
func TestWriteVmallocRoundTrip(t *testing.T) {
	tests := []struct {
		bytes  int
		pages  int
		chunks int
	}{
		{1, 1, 1},
		{16, 1, 1},
		{4096, 1, 1},
		{3*4096 + 100, 4, 1},
		{510 * 4096, 510, 1},
		{511 * 4096, 511, 2},
		{512 * 4096, 512, 2},
		{1022 * 4096, 1022, 3},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.bytes), func(t *testing.T) {
			r := newRegion(t, 8<<20)
			out, err := NewOutgoingWith(physmem.NewAllocator(r), Options{Generation: kernel.V72})
			if err != nil {
				t.Fatal(err)
			}
			data := make([]byte, tt.bytes)
			for i := range data {
				data[i] = byte(i*7 + i>>12)
			}
			v, pages, chunks, err := WriteVmalloc(out, data)
			if err != nil {
				t.Fatal(err)
			}
			if len(pages) != tt.pages || len(chunks) != tt.chunks || v.TotalPages != uint32(tt.pages) || v.First != chunks[0] {
				t.Fatalf("%d pages, %d chunks, descriptor %+v; want %d pages, %d chunks", len(pages), len(chunks), v, tt.pages, tt.chunks)
			}
			if v.Flags != VmallocFlagAlloc || v.Order != 0 {
				t.Errorf("flags %#x order %d, want KHO_VMALLOC_ALLOC order 0 (vcalloc)", v.Flags, v.Order)
			}
			a, err := RestoreVmalloc(r, v)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(a.Runs, pages) || !slices.Equal(a.Chunks, chunks) {
				t.Errorf("restored runs %#x chunks %#x, want %#x %#x", a.Runs, a.Chunks, pages, chunks)
			}
			got, err := a.Read(r, 0, uint64(len(data)))
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("Read: %v, content equal %v", err, bytes.Equal(got, data))
			}
			tail, err := a.Read(r, uint64(len(data)), a.Size()-uint64(len(data)))
			if err != nil || !bytes.Equal(tail, make([]byte, len(tail))) {
				t.Errorf("area after the data: %v, zero %v", err, bytes.Equal(tail, make([]byte, len(tail))))
			}
			if _, err := a.Read(r, 1, a.Size()); !errors.Is(err, unix.ERANGE) {
				t.Errorf("Read past the area: %v, want ERANGE", err)
			}
			root, err := out.Finalize()
			if err != nil {
				t.Fatal(err)
			}
			in, err := ReadIncoming(r, root)
			if err != nil {
				t.Fatal(err)
			}
			preserved := in.Blocks()
			for _, b := range a.Blocks() {
				if !slices.Contains(preserved, b) {
					t.Errorf("block %+v of the area not in the radix tree", b)
				}
			}
			if n := len(a.Blocks()); n != tt.pages+tt.chunks {
				t.Errorf("%d blocks, want %d pages and %d chunks", n, tt.pages, tt.chunks)
			}
		})
	}
}

// staticAlloc hands out fixed pages of a pageMem.
type staticAlloc struct {
	mem  pageMem
	next uint64
}

func (s *staticAlloc) AllocPreserve(size uint64) (uint64, []byte, error) {
	if size != physmem.PageSize {
		return 0, nil, unix.EINVAL
	}
	pa := s.next
	s.next += physmem.PageSize
	return pa, s.mem.page(pa), nil
}

// TestPreserveVmallocHugeRuns: an area of huge (order-9) runs records one
// address per run, total_pages counts pages, and each run is one block.
func TestPreserveVmallocHugeRuns(t *testing.T) {
	mem := pageMem{}
	alloc := &staticAlloc{mem: mem, next: 0x1000}
	runs := []uint64{0x40000000, 0x40600000, 0x40200000}
	v, chunks, err := PreserveVmalloc(alloc, runs, 9, VmallocFlagAlloc|VmallocFlagHugeVmap)
	if err != nil {
		t.Fatal(err)
	}
	if v.TotalPages != 3*512 || v.Order != 9 || len(chunks) != 1 {
		t.Fatalf("descriptor %+v, chunks %#x", v, chunks)
	}
	for _, pa := range runs {
		mem.page(pa) // the first page of each run is enough for the walk
	}
	a, err := RestoreVmalloc(mem, v)
	if err != nil {
		t.Fatal(err)
	}
	want := []Block{{0x1000, 0}, {0x40000000, 9}, {0x40600000, 9}, {0x40200000, 9}}
	if got := a.Blocks(); !slices.Equal(got, want) {
		t.Errorf("blocks %+v, want %+v", got, want)
	}
	for _, tt := range []struct {
		name  string
		runs  []uint64
		order uint
		flags uint16
		want  error
	}{
		{"empty area", nil, 0, VmallocFlagAlloc, unix.EINVAL},
		{"huge order without HUGE_VMAP", runs, 9, VmallocFlagAlloc, unix.EOPNOTSUPP},
		{"no VM_ALLOC", runs, 0, 0, unix.EOPNOTSUPP},
		{"unknown flag", runs, 0, VmallocFlagAlloc | 4, unix.EOPNOTSUPP},
		{"misaligned run", []uint64{0x40001000}, 9, VmallocFlagAlloc | VmallocFlagHugeVmap, unix.EINVAL},
		{"null run", []uint64{0}, 0, VmallocFlagAlloc, unix.EINVAL},
	} {
		if _, _, err := PreserveVmalloc(alloc, tt.runs, tt.order, tt.flags); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
}

// TestRestoreVmallocRejects names, for each kind of damage, what the 7.2
// kernel's kho_restore_vmalloc does with it and checks that the strict
// reader refuses it with a message that says what is wrong.
func TestRestoreVmallocRejects(t *testing.T) {
	const c0, c1, p0, p1, p2 = 0x10000, 0x11000, 0x20000, 0x21000, 0x22000
	good := func() (pageMem, Vmalloc) {
		m := pageMem{}
		m.chunkPage(c0, 0, p0, p1, p2)
		for _, p := range []uint64{p0, p1, p2} {
			m.page(p)
		}
		return m, Vmalloc{First: c0, TotalPages: 3, Flags: VmallocFlagAlloc}
	}
	full := make([]uint64, VmallocChunkEntries)
	for i := range full {
		full[i] = 0x100000 + uint64(i)*physmem.PageSize
	}
	tests := []struct {
		name   string
		damage func(m pageMem, v *Vmalloc)
		want   string
	}{
		// The kernel ignores unknown flags (kho_flags_to_vmalloc drops them).
		{"unknown flag", func(m pageMem, v *Vmalloc) { v.Flags |= 0x80 }, "unknown bits 0x80"},
		{"no KHO_VMALLOC_ALLOC", func(m pageMem, v *Vmalloc) { v.Flags = 0 }, "without KHO_VMALLOC_ALLOC"},
		// The kernel computes 1 << order for any u16 order.
		{"order without HUGE_VMAP", func(m pageMem, v *Vmalloc) { v.Order = 1 }, "order 1"},
		{"order beyond MAX_PAGE_ORDER", func(m pageMem, v *Vmalloc) { v.Flags |= VmallocFlagHugeVmap; v.Order = 40 }, "order 40"},
		// The kernel: idx (0) == total_pages, then a zero-sized vm area fails.
		{"total_pages 0", func(m pageMem, v *Vmalloc) { v.TotalPages = 0 }, "total_pages 0"},
		{"total_pages beyond the limit", func(m pageMem, v *Vmalloc) { v.TotalPages = MaxVmallocPages + 1 }, "total_pages"},
		// The kernel fails: idx + contig_pages > total_pages.
		{"more runs than total_pages", func(m pageMem, v *Vmalloc) { v.TotalPages = 2 }, "more than the 2 runs"},
		// The kernel fails: idx != total_pages.
		{"fewer runs than total_pages", func(m pageMem, v *Vmalloc) { v.TotalPages = 4 }, "chunks hold 3 runs"},
		{"no first chunk", func(m pageMem, v *Vmalloc) { v.First = 0 }, "no first chunk"},
		// The kernel truncates the address to its page.
		{"misaligned chunk", func(m pageMem, v *Vmalloc) { v.First = c0 + 8 }, "not a page address"},
		{"misaligned run", func(m pageMem, v *Vmalloc) {
			binary.LittleEndian.PutUint64(m[c0][VmallocChunkHeaderSize+8:], p1+0x10)
		}, "is not a 4096-byte aligned run"},
		{"run beyond 52 bits", func(m pageMem, v *Vmalloc) {
			binary.LittleEndian.PutUint64(m[c0][VmallocChunkHeaderSize:], 1<<52)
		}, "is not a 4096-byte aligned run"},
		// The kernel's second kho_restore_pages of a page fails (no magic).
		{"run repeated", func(m pageMem, v *Vmalloc) {
			binary.LittleEndian.PutUint64(m[c0][VmallocChunkHeaderSize+16:], p0)
		}, "already holds run 0"},
		{"run is the chunk", func(m pageMem, v *Vmalloc) {
			binary.LittleEndian.PutUint64(m[c0][VmallocChunkHeaderSize:], c0)
		}, "chunk 0 at 0x10000 lies in run 0"},
		// The kernel stops at the first zero and never looks further.
		{"garbage after the terminator", func(m pageMem, v *Vmalloc) {
			binary.LittleEndian.PutUint64(m[c0][VmallocChunkHeaderSize+8*10:], p2)
		}, "entry 10 after the terminator at 3"},
		// The kernel follows next from any chunk.
		{"next from a partial chunk", func(m pageMem, v *Vmalloc) {
			binary.LittleEndian.PutUint64(m[c0], c1)
			m.chunkPage(c1, 0)
		}, "not full, yet links to 0x11000"},
		{"chunk unavailable", func(m pageMem, v *Vmalloc) { delete(m, c0) }, "no memory at 0x10000"},
		// A full chunk that links to itself: the kernel's second restore
		// of the chunk page fails.
		{"chunk list loops", func(m pageMem, v *Vmalloc) {
			m.chunkPage(c0, c0, full...)
			v.TotalPages = 2 * VmallocChunkEntries
		}, "chunk 1 at 0x10000: page 0x10000 already holds chunk 0"},
		{"a full chunk beyond total_pages", func(m pageMem, v *Vmalloc) {
			m.chunkPage(c0, c1, full...)
			m.chunkPage(c1, 0)
			v.TotalPages = VmallocChunkEntries - 1
		}, "more than the 510 runs"},
	}
	m, v := good()
	if _, err := RestoreVmalloc(m, v); err != nil {
		t.Fatalf("undamaged area: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, v := good()
			tt.damage(m, &v)
			a, err := RestoreVmalloc(m, v)
			if err == nil {
				t.Fatalf("accepted: %+v", a)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to say %q", err, tt.want)
			}
		})
	}
}

// TestRestoreVmallocTrailingEmptyChunk: 511 runs fill the first chunk, so
// kho_preserve_vmalloc links an empty second one; the reader accepts it,
// and also a list without it (the kernel reads both the same way).
func TestRestoreVmallocTrailingEmptyChunk(t *testing.T) {
	const c0, c1 = 0x10000, 0x11000
	runs := make([]uint64, VmallocChunkEntries)
	for i := range runs {
		runs[i] = 0x100000 + uint64(i)*physmem.PageSize
	}
	v := Vmalloc{First: c0, TotalPages: VmallocChunkEntries, Flags: VmallocFlagAlloc}
	for _, next := range []uint64{c1, 0} {
		m := pageMem{}
		m.chunkPage(c0, next, runs...)
		m.chunkPage(c1, 0)
		a, err := RestoreVmalloc(m, v)
		if err != nil {
			t.Fatalf("next %#x: %v", next, err)
		}
		if want := 1 + int(next/c1); len(a.Chunks) != want || len(a.Runs) != len(runs) {
			t.Errorf("next %#x: %d chunks %d runs, want %d and %d", next, len(a.Chunks), len(a.Runs), want, len(runs))
		}
	}
}

// FuzzRestoreVmalloc feeds a descriptor and two chunk pages of arbitrary
// bytes to the reader: it must not panic, and what it accepts must be
// consistent.
func FuzzRestoreVmalloc(f *testing.F) {
	seed := func(v Vmalloc, c0, c1 []uint64) []byte {
		b := make([]byte, VmallocSize+2*physmem.PageSize)
		v.Put(b)
		for i, x := range c0 {
			binary.LittleEndian.PutUint64(b[VmallocSize+8*i:], x)
		}
		for i, x := range c1 {
			binary.LittleEndian.PutUint64(b[VmallocSize+physmem.PageSize+8*i:], x)
		}
		return b
	}
	f.Add(seed(Vmalloc{First: 0x1000, TotalPages: 2, Flags: 1}, []uint64{0, 0x3000, 0x4000}, nil))
	f.Add(seed(Vmalloc{First: 0x1000, TotalPages: 1, Flags: 1}, []uint64{0x2000, 0x3000}, []uint64{0, 0x3000}))
	f.Add(seed(Vmalloc{First: 0x1000, TotalPages: 512, Flags: 3, Order: 9}, []uint64{0, 0x200000}, nil))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < VmallocSize {
			return
		}
		v, err := ParseVmalloc(b)
		if err != nil {
			t.Fatal(err)
		}
		m := pageMem{}
		rest := b[VmallocSize:]
		for _, pa := range []uint64{0x1000, 0x2000} {
			p := m.page(pa)
			rest = rest[copy(p, rest):]
		}
		for _, pa := range []uint64{0x3000, 0x4000, 0x200000} {
			m.page(pa)
		}
		a, err := RestoreVmalloc(m, v)
		if err != nil {
			return
		}
		if uint64(len(a.Runs))<<a.Order != uint64(a.TotalPages) || len(a.Chunks) == 0 || a.Chunks[0] != v.First {
			t.Fatalf("accepted an inconsistent area %+v", a)
		}
		if _, err := a.Read(m, 0, min(a.Size(), physmem.PageSize)); err != nil && !errors.Is(err, unix.EFAULT) {
			t.Fatalf("Read: %v", err)
		}
	})
}

func TestVmallocEncoding(t *testing.T) {
	if got := binary.Size(Vmalloc{}); got != VmallocSize {
		t.Fatalf("binary.Size(Vmalloc) = %d, want sizeof(struct kho_vmalloc) %d", got, VmallocSize)
	}
	v := Vmalloc{First: 0x123456789000, TotalPages: 7, Flags: VmallocFlagHugeVmap, Order: 9}
	b := make([]byte, VmallocSize)
	v.Put(b)
	le := binary.LittleEndian
	if le.Uint64(b) != v.First || le.Uint32(b[8:]) != v.TotalPages || le.Uint16(b[12:]) != v.Flags || le.Uint16(b[14:]) != v.Order {
		t.Fatalf("Put: fields not at the kernel's offsets: % x", b)
	}
	if got, err := ParseVmalloc(b); err != nil || got != v {
		t.Fatalf("ParseVmalloc(Put(v)) = %+v, %v; want %+v", got, err, v)
	}
}

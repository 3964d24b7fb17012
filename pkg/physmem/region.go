package physmem

import (
	"fmt"
	"math"
	"os"

	"golang.org/x/sys/unix"
)

// Region is a window of physical memory [base, base+size) mapped into the
// process. Its methods may be called concurrently, except Close, which must
// not race with any other use; slices returned by Bytes are invalid after
// Close.
type Region struct {
	base, size uint64
	mem        []byte
	unmap      bool // mem came from mmap and must be unmapped by Close
}

// New returns a Region backed by mem (for tests). base and len(mem) must be
// page aligned and len(mem) non-zero.
func New(base uint64, mem []byte) (*Region, error) {
	rg := Range{base, uint64(len(mem))}
	if err := checkRegionRange(rg); err != nil {
		return nil, err
	}
	return &Region{base: base, size: rg.Size, mem: mem}, nil
}

func checkRegionRange(rg Range) error {
	if !rg.valid() || (rg.Start|rg.Size)%PageSize != 0 || rg.Size > math.MaxInt || rg.Start > math.MaxInt64 {
		return fmt.Errorf("physmem: region %v: %w: base and size must be page aligned (%d), size non-zero, no wrap",
			rg, unix.EINVAL, PageSize)
	}
	return nil
}

// OpenFile maps the file at path as the region [base, base+size): the byte at
// file offset k is physical address base+k. The file is created if missing
// and grown to size if smaller; a larger file is never shrunk, only its first
// size bytes are used. Writes are shared with the file.
func OpenFile(path string, base, size uint64) (*Region, error) {
	if err := checkRegionRange(Range{base, size}); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("physmem: open backing file: %w", err)
	}
	defer f.Close() // the mapping outlives the descriptor
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("physmem: stat backing file: %w", err)
	}
	if uint64(st.Size()) < size {
		if err := f.Truncate(int64(size)); err != nil {
			return nil, fmt.Errorf("physmem: grow backing file to %d bytes: %w", size, err)
		}
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("physmem: mmap(%s, offset 0, %d bytes, shared rw): %w", path, size, err)
	}
	return &Region{base: base, size: size, mem: mem, unmap: true}, nil
}

// Base returns the first physical address of the region.
func (r *Region) Base() uint64 { return r.base }

// Size returns the size of the region in bytes.
func (r *Region) Size() uint64 { return r.size }

// End returns the first physical address after the region.
func (r *Region) End() uint64 { return r.base + r.size }

// Range returns the region's span.
func (r *Region) Range() Range { return Range{r.base, r.size} }

// Contains reports whether [pa, pa+n) lies in the region. It never
// overflows, whatever pa and n are.
func (r *Region) Contains(pa, n uint64) bool {
	return r.Range().Contains(Range{pa, n})
}

// Bytes returns the n bytes at physical address pa, aliasing the region's
// memory; the slice's capacity is n, so appending never spills over.
func (r *Region) Bytes(pa, n uint64) ([]byte, error) {
	if r.mem == nil {
		return nil, fmt.Errorf("physmem: read %d bytes at %#x: %w", n, pa, os.ErrClosed)
	}
	if !r.Contains(pa, n) {
		return nil, fmt.Errorf("physmem: %d bytes at %#x: %w %v", n, pa, ErrOutOfRegion, r.Range())
	}
	off := pa - r.base
	return r.mem[off : off+n : off+n], nil
}

// Close unmaps the region. A second Close is a no-op.
func (r *Region) Close() error {
	mem := r.mem
	r.mem = nil
	if mem == nil || !r.unmap {
		return nil
	}
	// No msync: it fails with EINVAL on /dev/mem, and a MAP_SHARED file
	// mapping reaches the page cache without it.
	if err := unix.Munmap(mem); err != nil {
		return fmt.Errorf("physmem: munmap region %v: %w", r.Range(), err)
	}
	return nil
}

package memfd

import (
	"errors"
	"fmt"
	"slices"

	"github.com/kho-sim/kho-sim/internal/payload"
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/kho"
)

// ErrBad is wrapped by every error Read returns about the state itself
// (as opposed to memory it could not read).
var ErrBad = errors.New("memfd: bad memfd-v2 state")

// DefaultMaxSize is the largest file Read checksums when Options.MaxSize
// is 0.
const DefaultMaxSize = 1 << 30

// Options tune Read.
type Options struct {
	// Preserved reports the order of the preserved block that starts at
	// pa, from the previous kernel's memory map, and false when no block
	// starts there. memfd_luo_folio_ser does not record a folio's order:
	// kho_restore_folio takes it from the block, and the memfd_luo_ser,
	// the folio array and its chunks are restored the same way. With
	// Preserved, Read demands that every one of them is a preserved block
	// of the right order; without it (nil), it checks nothing of the sort
	// and takes every folio to be one page.
	Preserved func(pa uint64) (order uint, ok bool)
	// MaxSize bounds the file size Read accepts (DefaultMaxSize if 0): the
	// checksum reads every page.
	MaxSize uint64
}

// FolioInfo is one decoded folio.
type FolioInfo struct {
	FolioSer
	Order uint // from Options.Preserved; 0 without it
}

// PA is the folio's physical address.
func (f FolioInfo) PA() uint64 { return f.PFN * kernel.PageSize }

// File is a decoded memfd-v2 state.
type File struct {
	PA  uint64 // the memfd_luo_ser
	Ser Ser
	// Area is the folio array's vmalloc area, nil without folios.
	Area *kho.VmallocArea
	// Folios are the array's entries with a frame, in array order.
	Folios []FolioInfo
	// Skipped counts entries with pfn 0, which memfd_luo_retrieve_folios
	// skips (7.2 never writes one).
	Skipped int
	// Holes counts the pages below Size that no folio covers.
	Holes uint64
	// Checksum is the CRC-32 (payload.Checksum) of the logical content: Size bytes, each
	// page from its up-to-date folio, zeros for holes and for folios
	// without FolioUptodate.
	Checksum uint32
}

// Size is the file's size in bytes.
func (f *File) Size() uint64 { return f.Ser.Size }

// Seals are the preserved F_SEAL_* bits.
func (f *File) Seals() uint32 { return f.Ser.Seals }

// String is the file's one-line summary, for an inspect report.
func (f *File) String() string {
	return fmt.Sprintf("size %d, %d folios, checksum %#08x (crc32), seals %#x", f.Ser.Size, len(f.Folios), f.Checksum, f.Ser.Seals)
}

// Blocks lists every block the file occupies: the memfd_luo_ser page, the
// folio array's chunks and pages, each folio.
func (f *File) Blocks() []kho.Block {
	out := []kho.Block{{PA: f.PA}}
	if f.Area != nil {
		out = append(out, f.Area.Blocks()...)
	}
	for _, fo := range f.Folios {
		out = append(out, kho.Block{PA: fo.PA(), Order: fo.Order})
	}
	return out
}

func bad(pa uint64, format string, args ...any) error {
	return fmt.Errorf("memfd-v2 state at %#x: %s: %w", pa, fmt.Sprintf(format, args...), ErrBad)
}

// Read decodes the memfd-v2 state at pa (a luo_file_ser data handle) in
// untrusted memory. It checks what memfd_luo_retrieve checks (seals within
// MEMFD_LUO_ALL_SEALS; the folio array as kho_restore_vmalloc does; each
// folio preserved, at a free index aligned to its order) and what it does
// not: flags zero; pos and size within MAX_LFS_FILESIZE, size within
// MaxSize; nr_folios no more than the file's pages, and the array exactly
// the vcalloc of nr_folios entries (the kernel reads nr_folios entries of
// whatever area it got, past its end if nr_folios lies); known folio
// flags; folios below the end of the file, none overlapping another or
// the array. Then it checksums the content.
func Read(mem kho.PhysReader, pa uint64, opt Options) (*File, error) {
	maxSize := opt.MaxSize
	if maxSize == 0 {
		maxSize = DefaultMaxSize
	}
	if pa == 0 || pa%kernel.PageSize != 0 || pa >= maxPhys {
		return nil, bad(pa, "not the address of a kho_alloc_preserve block")
	}
	if opt.Preserved != nil {
		if order, ok := opt.Preserved(pa); !ok || order != 0 {
			return nil, bad(pa, "memfd_luo_ser is not a preserved order-0 block (kho_restore_free WARNs)")
		}
	}
	b, err := mem.Bytes(pa, SerSize)
	if err != nil {
		return nil, fmt.Errorf("memfd-v2 state at %#x: %w", pa, err)
	}
	ser, err := ParseSer(b)
	if err != nil {
		return nil, fmt.Errorf("memfd-v2 state at %#x: %w", pa, err)
	}
	f := &File{PA: pa, Ser: ser}
	switch {
	case ser.Flags != 0:
		return nil, bad(pa, "flags %#x: unused bits must be 0", ser.Flags)
	case ser.Seals&^AllSeals != 0:
		return nil, bad(pa, "seals %#x outside MEMFD_LUO_ALL_SEALS %#x (retrieve fails with EOPNOTSUPP)", ser.Seals, AllSeals)
	case ser.Pos > MaxLFSFileSize:
		return nil, bad(pa, "pos %#x beyond MAX_LFS_FILESIZE (vfs_setpos fails, unchecked: the file opens at 0)", ser.Pos)
	case ser.Size > MaxLFSFileSize:
		return nil, bad(pa, "size %#x beyond MAX_LFS_FILESIZE", ser.Size)
	case ser.Size > maxSize:
		return nil, bad(pa, "size %d beyond the reader's limit %d", ser.Size, maxSize)
	case ser.NrFolios > pages(ser.Size):
		return nil, bad(pa, "nr_folios %d for a file of %d pages", ser.NrFolios, pages(ser.Size))
	}
	if ser.NrFolios == 0 {
		if !ser.Folios.IsZero() {
			return nil, bad(pa, "no folios, but a folio descriptor %+v (7.2 leaves it as kho_alloc_preserve zeroed it)", ser.Folios)
		}
		f.Checksum, _ = f.checksum(nil) // all holes: nothing to read
		return f, nil
	}
	arrayBytes := ser.NrFolios * FolioSerSize
	if want := pages(arrayBytes); uint64(ser.Folios.TotalPages) != want {
		return nil, bad(pa, "folio array of %d pages for %d entries, vcalloc makes %d (the kernel reads nr_folios entries regardless)", ser.Folios.TotalPages, ser.NrFolios, want)
	}
	area, err := kho.RestoreVmalloc(mem, ser.Folios)
	if err != nil {
		return nil, fmt.Errorf("memfd-v2 state at %#x: folio array: %w", pa, err)
	}
	f.Area = area
	if opt.Preserved != nil {
		for _, blk := range area.Blocks() {
			if order, ok := opt.Preserved(blk.PA); !ok || order != blk.Order {
				return nil, bad(pa, "folio array block %#x (order %d) is not preserved as such (kho_restore_vmalloc fails)", blk.PA, blk.Order)
			}
		}
	}
	array, err := area.Read(mem, 0, arrayBytes)
	if err != nil {
		return nil, fmt.Errorf("memfd-v2 state at %#x: folio array: %w", pa, err)
	}
	filePages := pages(ser.Size)
	for i := uint64(0); i < ser.NrFolios; i++ {
		e := ParseFolioSer(array[i*FolioSerSize:])
		if e.PFN == 0 {
			f.Skipped++
			continue
		}
		fi := FolioInfo{FolioSer: e}
		switch {
		case e.Flags&^folioFlagsKnown != 0:
			return nil, bad(pa, "folio %d: flags %#x: unknown bits (the kernel ignores them)", i, e.Flags)
		case e.PFN >= maxPhys/kernel.PageSize:
			return nil, bad(pa, "folio %d: pfn %#x beyond 52 physical address bits", i, e.PFN)
		case e.Index >= filePages:
			return nil, bad(pa, "folio %d: index %d at or beyond the file's %d pages (restored past EOF, unreadable)", i, e.Index, filePages)
		}
		if opt.Preserved != nil {
			order, ok := opt.Preserved(fi.PA())
			if !ok {
				return nil, bad(pa, "folio %d at %#x is not preserved (kho_restore_folio fails: retrieve EIO)", i, fi.PA())
			}
			fi.Order = order
		}
		if fi.Order > kho.MaxPageOrder {
			return nil, bad(pa, "folio %d at %#x: order %d beyond MAX_PAGE_ORDER", i, fi.PA(), fi.Order)
		}
		if e.Index%(1<<fi.Order) != 0 {
			return nil, bad(pa, "folio %d: index %d not aligned to its order %d (shmem_add_to_page_cache)", i, e.Index, fi.Order)
		}
		f.Folios = append(f.Folios, fi)
	}
	if err := f.checkOverlaps(); err != nil {
		return nil, err
	}
	if f.Checksum, err = f.checksum(mem); err != nil {
		return nil, fmt.Errorf("memfd-v2 state at %#x: content: %w", pa, err)
	}
	return f, nil
}

// checkOverlaps rejects two folios at one index range (the second
// shmem_add_to_page_cache fails with EEXIST) and any two blocks of the
// file sharing memory (the second restore of a page fails).
func (f *File) checkOverlaps() error {
	byIndex := slices.Clone(f.Folios)
	slices.SortFunc(byIndex, func(a, b FolioInfo) int { return cmpU64(a.Index, b.Index) })
	for i := 1; i < len(byIndex); i++ {
		p, c := byIndex[i-1], byIndex[i]
		if c.Index < p.Index+1<<p.Order {
			return bad(f.PA, "folios at %#x and %#x both hold file page %d", p.PA(), c.PA(), c.Index)
		}
	}
	blocks := f.Blocks()
	slices.SortFunc(blocks, func(a, b kho.Block) int { return cmpU64(a.PA, b.PA) })
	for i := 1; i < len(blocks); i++ {
		if p, c := blocks[i-1], blocks[i]; c.PA < p.PA+p.Size() {
			return bad(f.PA, "blocks %#x (order %d) and %#x (order %d) overlap", p.PA, p.Order, c.PA, c.Order)
		}
	}
	return nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

var zeroPage [kernel.PageSize]byte

// eachPage calls fn with the content of every page of the file in order,
// the last one cut at Size: the page of its up-to-date folio, or zeros.
func (f *File) eachPage(mem kho.PhysReader, fn func([]byte)) error {
	// The page of each index: the folio's address plus the page's offset
	// in it; absent for a hole or a folio that is not up to date.
	at := make(map[uint64]uint64, len(f.Folios))
	for _, fo := range f.Folios {
		if fo.Flags&FolioUptodate == 0 {
			continue
		}
		for j := uint64(0); j < 1<<fo.Order; j++ {
			at[fo.Index+j] = fo.PA() + j*kernel.PageSize
		}
	}
	for idx, size := uint64(0), f.Ser.Size; idx*kernel.PageSize < size; idx++ {
		n := min(kernel.PageSize, size-idx*kernel.PageSize)
		pa, ok := at[idx]
		if !ok {
			fn(zeroPage[:n])
			continue
		}
		b, err := mem.Bytes(pa, n)
		if err == nil && uint64(len(b)) != n {
			err = fmt.Errorf("page %#x: %d bytes, want %d", pa, len(b), n)
		}
		if err != nil {
			return fmt.Errorf("file page %d: %w", idx, err)
		}
		fn(b)
	}
	return nil
}

// checksum computes the content's Checksum and counts the holes.
func (f *File) checksum(mem kho.PhysReader) (uint32, error) {
	var crc uint32
	err := f.eachPage(mem, func(b []byte) { crc = payload.Update(crc, b) })
	var covered uint64
	for _, fo := range f.Folios {
		covered += min(uint64(1)<<fo.Order, pages(f.Ser.Size)-fo.Index)
	}
	f.Holes = pages(f.Ser.Size) - covered
	return crc, err
}

// Content returns a copy of the file's logical content (Size bytes), what
// read(2) returns from the retrieved memfd.
func (f *File) Content(mem kho.PhysReader) ([]byte, error) {
	out := make([]byte, 0, f.Ser.Size)
	err := f.eachPage(mem, func(b []byte) { out = append(out, b...) })
	if err != nil {
		return nil, fmt.Errorf("memfd-v2 state at %#x: content: %w", f.PA, err)
	}
	return out, nil
}

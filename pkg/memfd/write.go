package memfd

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/internal/payload"
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/kho"
)

// MaxWriteSize bounds the size of a file Write lays out (its content is
// built in memory first).
const MaxWriteSize = 256 << 20

// Folio is one folio of a file Write lays out.
type Folio struct {
	// Index is the folio's first page in the file, a multiple of 2^Order
	// (shmem_add_to_page_cache requires it), below the file's last page.
	Index uint64
	// Order is the folio's order: 0 for a base page, more for shmem's
	// large folios. memfd_luo_folio_ser does not record it; the next
	// kernel takes it from the preserved block (kho_restore_folio).
	Order uint
	// Flags are the memfd_luo_folio_ser flags. 0 means FolioDirty |
	// FolioUptodate, what 7.2 writes for every folio (memfd_luo marks each
	// dirty and zeroes and marks up to date those that were not).
	Flags uint16
}

func (f Folio) flags() uint16 {
	if f.Flags == 0 {
		return FolioDirty | FolioUptodate
	}
	return f.Flags
}

func (f Folio) pages() uint64 { return 1 << f.Order }

// Spec describes a memfd for Write.
type Spec struct {
	Size  uint64 // i_size in bytes
	Pos   uint64 // the file position
	Seals uint32 // F_SEAL_* bits, within AllSeals
	Seed  uint64 // the content (payload.Fill of the whole file)
	// Folios are the file's folios. Nil means one order-0 folio for every
	// page below Size: memfd_pin_folios allocates a folio for every index,
	// so a file 7.2 preserves has no holes. Leaving pages out makes a
	// sparse file, which 7.2 never writes but restores, the missing pages
	// reading as zeros.
	Folios []Folio
}

// folios returns the folios in index order.
func (s Spec) folios() []Folio {
	if s.Folios == nil {
		out := make([]Folio, pages(s.Size))
		for i := range out {
			out[i].Index = uint64(i)
		}
		return out
	}
	out := slices.Clone(s.Folios)
	slices.SortFunc(out, func(a, b Folio) int { return cmp.Compare(a.Index, b.Index) })
	return out
}

// pages is the number of pages a file of size bytes spans.
func pages(size uint64) uint64 { return size/kernel.PageSize + min(size%kernel.PageSize, 1) }

// Check reports what in s the 7.2 kernel would refuse to preserve or to
// restore, or what makes no sense as a file.
func (s Spec) Check() error {
	if s.Size > MaxWriteSize {
		return fmt.Errorf("memfd: size %d, more than %d: %w", s.Size, MaxWriteSize, unix.EFBIG)
	}
	if s.Pos > MaxLFSFileSize {
		return fmt.Errorf("memfd: pos %#x beyond MAX_LFS_FILESIZE: %w", s.Pos, unix.EINVAL)
	}
	if s.Seals&^AllSeals != 0 {
		return fmt.Errorf("memfd: seals %#x outside MEMFD_LUO_ALL_SEALS %#x: %w", s.Seals, AllSeals, unix.EOPNOTSUPP)
	}
	end := uint64(0) // first index after the previous folio
	for i, f := range s.folios() {
		switch {
		case f.Order > kho.MaxPageOrder:
			return fmt.Errorf("memfd: folio %d: order %d beyond MAX_PAGE_ORDER: %w", i, f.Order, unix.EINVAL)
		case f.Index%f.pages() != 0:
			return fmt.Errorf("memfd: folio %d: index %d not a multiple of its %d pages: %w", i, f.Index, f.pages(), unix.EINVAL)
		case f.Index >= pages(s.Size):
			return fmt.Errorf("memfd: folio %d: index %d at or beyond the file's %d pages: %w", i, f.Index, pages(s.Size), unix.EINVAL)
		case i > 0 && f.Index < end:
			return fmt.Errorf("memfd: folio %d: index %d inside the previous folio: %w", i, f.Index, unix.EEXIST)
		case f.Flags&^folioFlagsKnown != 0:
			return fmt.Errorf("memfd: folio %d: flags %#x: %w", i, f.Flags, unix.EINVAL)
		}
		end = f.Index + f.pages()
	}
	return nil
}

// Content returns the file's logical content, what read(2) returns after
// the next kernel retrieved it: the seeded bytes in the pages of up-to-date
// folios, zeros in holes and in folios without FolioUptodate.
func (s Spec) Content() ([]byte, error) {
	if err := s.Check(); err != nil {
		return nil, err
	}
	return s.content(), nil
}

func (s Spec) content() []byte {
	seeded := s.seeded()
	out := make([]byte, s.Size)
	for _, f := range s.folios() {
		if f.flags()&FolioUptodate == 0 {
			continue
		}
		lo := min(f.Index*kernel.PageSize, s.Size)
		hi := min((f.Index+f.pages())*kernel.PageSize, s.Size)
		copy(out[lo:hi], seeded[lo:hi])
	}
	return out
}

// seeded is the seeded bytes of every page, holes included.
func (s Spec) seeded() []byte {
	b := make([]byte, s.Size)
	payload.Fill(b, s.Seed)
	return b
}

// Checksum is the CRC-32 of a file's logical content, what Read reports.
func Checksum(content []byte) uint32 { return payload.Checksum(content) }

// Block is one preserved block a file uses.
type Block struct {
	PA    uint64
	Order uint
	What  string // "memfd_luo_ser", "folio index N", "folio array page N", "vmalloc chunk N"
}

// Written is a file Write laid out.
type Written struct {
	// PA is the memfd_luo_ser, the luo_file_ser data handle of the file.
	PA  uint64
	Ser Ser
	// Blocks are every block allocated for the file, each preserved by
	// the allocator (a kho_alloc_preserve folio, one radix-tree entry).
	Blocks []Block
	// Checksum is the CRC-32 of the logical content (Spec.Content).
	Checksum uint32
}

// Write lays out the memfd s describes as memfd_luo_preserve does: the
// memfd_luo_ser (kho_alloc_preserve), each folio with the file's seeded
// bytes (kho_preserve_folio, one block of the folio's order), the folio
// array in order-0 pages as vcalloc allocates it and its kho_vmalloc
// chunks. Every block comes from alloc, which must preserve it; all of
// them are listed in the result. A folio without FolioUptodate still
// holds the seeded bytes (stale data a reader must not count).
func Write(alloc kho.PageAllocator, s Spec) (*Written, error) {
	if err := s.Check(); err != nil {
		return nil, err
	}
	serPA, serMem, err := alloc.AllocPreserve(SerSize)
	if err != nil {
		return nil, fmt.Errorf("memfd: allocate memfd_luo_ser: %w", err)
	}
	if len(serMem) < SerSize {
		return nil, fmt.Errorf("memfd: memfd_luo_ser at %#x: %d bytes: %w", serPA, len(serMem), unix.EFAULT)
	}
	w := &Written{PA: serPA, Blocks: []Block{{serPA, 0, "memfd_luo_ser"}}}
	seeded := s.seeded()
	folios := s.folios()
	array := make([]byte, len(folios)*FolioSerSize)
	for i, f := range folios {
		n := uint64(kernel.PageSize) << f.Order
		pa, mem, err := alloc.AllocPreserve(n)
		if err != nil {
			return nil, fmt.Errorf("memfd: allocate folio %d (index %d, order %d): %w", i, f.Index, f.Order, err)
		}
		if uint64(len(mem)) < n || pa%n != 0 {
			return nil, fmt.Errorf("memfd: folio %d at %#x: %d bytes, want %d aligned: %w", i, pa, len(mem), n, unix.EFAULT)
		}
		lo := min(f.Index*kernel.PageSize, s.Size)
		clear(mem[:n])
		copy(mem, seeded[lo:min(lo+n, s.Size)])
		FolioSer{PFN: pa / kernel.PageSize, Flags: f.flags(), Index: f.Index}.Put(array[i*FolioSerSize:])
		w.Blocks = append(w.Blocks, Block{pa, f.Order, fmt.Sprintf("folio index %d", f.Index)})
	}
	ser := Ser{Pos: s.Pos, Size: s.Size, Seals: s.Seals, NrFolios: uint64(len(folios))}
	if len(folios) > 0 {
		v, pages, chunks, err := kho.WriteVmalloc(alloc, array)
		if err != nil {
			return nil, fmt.Errorf("memfd: folio array: %w", err)
		}
		ser.Folios = v
		for i, pa := range pages {
			w.Blocks = append(w.Blocks, Block{pa, 0, fmt.Sprintf("folio array page %d", i)})
		}
		for i, pa := range chunks {
			w.Blocks = append(w.Blocks, Block{pa, 0, fmt.Sprintf("vmalloc chunk %d", i)})
		}
	}
	ser.Put(serMem)
	w.Ser = ser
	w.Checksum = Checksum(s.content())
	return w, nil
}

// Example is a named file of Examples.
type Example struct {
	Name string
	Spec Spec
}

// Examples are the memfds kho-sim hands over to exercise every shape of
// memfd-v2 state, their content seeded from the name and the boot
// (payload.Seed): a multi-folio file with a position, one with large
// folios, a sparse one (which 7.2 restores but never writes), a sealed one
// and an empty one.
func Examples(boot int) []Example {
	ex := []Example{
		{"memfd-multi", Spec{Size: 5*kernel.PageSize + 123, Pos: kernel.PageSize + 7}},
		{"memfd-large", Spec{Size: 8 * kernel.PageSize, Folios: []Folio{{Index: 0, Order: 2}, {Index: 4, Order: 1}, {Index: 6}, {Index: 7}}}},
		{"memfd-sparse", Spec{Size: 10*kernel.PageSize - 1, Folios: []Folio{{Index: 0}, {Index: 1}, {Index: 4}, {Index: 9}}}},
		{"memfd-sealed", Spec{Size: 3000, Seals: SealSeal | SealShrink | SealGrow | SealWrite}},
		{"memfd-empty", Spec{Seals: SealSeal}},
	}
	for i := range ex {
		ex[i].Spec.Seed = payload.Seed(ex[i].Name, boot)
	}
	return ex
}

// ExampleShapes names the shapes of Examples ("multi", "large", "sparse",
// "sealed", "empty"), as scenario files refer to them.
func ExampleShapes() []string {
	var out []string
	for _, e := range Examples(0) {
		out = append(out, strings.TrimPrefix(e.Name, "memfd-"))
	}
	return out
}

// ExampleSpec is the Examples file of the given shape with content seed,
// or false for an unknown shape.
func ExampleSpec(shape string, seed uint64) (Spec, bool) {
	for _, e := range Examples(0) {
		if e.Name == "memfd-"+shape {
			s := e.Spec
			s.Folios = slices.Clone(s.Folios)
			s.Seed = seed
			return s, true
		}
	}
	return Spec{}, false
}

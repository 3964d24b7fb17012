package memfd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/internal/payload"
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

const testBase = 0x10000000

// world is a kho-v4 outgoing KHO over a fresh region.
type world struct {
	t   testing.TB
	r   *physmem.Region
	out *kho.Outgoing
}

func newWorld(t testing.TB) *world {
	t.Helper()
	r, err := physmem.New(testBase, make([]byte, 16<<20))
	if err != nil {
		t.Fatal(err)
	}
	out, err := kho.NewOutgoingWith(physmem.NewAllocator(r), kho.Options{Generation: kernel.V72})
	if err != nil {
		t.Fatal(err)
	}
	return &world{t, r, out}
}

// handover finalizes the KHO and returns the preserved blocks as the next
// kernel reads them from the radix tree, as a Preserved function.
func (w *world) handover() (map[uint64]uint, func(uint64) (uint, bool)) {
	w.t.Helper()
	root, err := w.out.Finalize()
	if err != nil {
		w.t.Fatal(err)
	}
	in, err := kho.ReadIncoming(w.r, root)
	if err != nil {
		w.t.Fatal(err)
	}
	m := map[uint64]uint{}
	for _, b := range in.Blocks() {
		m[b.PA] = b.Order
	}
	return m, func(pa uint64) (uint, bool) { o, ok := m[pa]; return o, ok }
}

func TestLayout(t *testing.T) {
	// struct memfd_luo_ser, packed: pos 0, size 8, seals 16, flags 20,
	// nr_folios 24, folios 32 (16 bytes): 48 bytes.
	s := Ser{Pos: 1, Size: 2, Seals: 3, Flags: 4, NrFolios: 5, Folios: kho.Vmalloc{First: 6, TotalPages: 7, Flags: 8, Order: 9}}
	b := make([]byte, SerSize)
	s.Put(b)
	want := []byte{1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 8, 0, 9, 0}
	if SerSize != 48 || !bytes.Equal(b, want) {
		t.Errorf("memfd_luo_ser (%d bytes): % x, want % x", SerSize, b, want)
	}
	if got, err := ParseSer(b); err != nil || got != s {
		t.Errorf("ParseSer: %+v %v", got, err)
	}
	// struct memfd_luo_folio_ser: pfn in bits 0-51 and flags in bits 52-63
	// of the first u64, index the second.
	f := FolioSer{PFN: 0xabcdef0123456, Flags: 0xfff, Index: 0x1122}
	fb := make([]byte, FolioSerSize)
	f.Put(fb)
	if w := binary.LittleEndian.Uint64(fb); w != 0xfffabcdef0123456 {
		t.Errorf("folio word %#x, want 0xfffabcdef0123456", w)
	}
	if got := ParseFolioSer(fb); got != f {
		t.Errorf("ParseFolioSer: %+v, want %+v", got, f)
	}
	// Bits beyond the fields' widths are dropped, as the compiler does.
	FolioSer{PFN: 1<<52 | 7, Flags: 1<<12 | 2}.Put(fb)
	if got := ParseFolioSer(fb); got.PFN != 7 || got.Flags != 2 {
		t.Errorf("oversized fields: %+v", got)
	}
}

func TestSealValues(t *testing.T) {
	// include/uapi/linux/fcntl.h and MEMFD_LUO_ALL_SEALS.
	got := []uint32{SealSeal, SealShrink, SealGrow, SealWrite, SealFutureWrite, SealExec, AllSeals}
	want := []uint32{1, 2, 4, 8, 0x10, 0x20, 0x3f}
	if !slices.Equal(got, want) {
		t.Errorf("seals %#x, want %#x", got, want)
	}
}

// TestRestoredSeals: memfd_luo_retrieve re-applies the seals with
// memfd_add_seals on a new, executable memfd, where F_SEAL_EXEC implies
// every write seal.
func TestRestoredSeals(t *testing.T) {
	tests := []struct{ in, want uint32 }{
		{0, 0},
		{SealSeal, SealSeal},
		{SealWrite | SealGrow, SealWrite | SealGrow},
		{SealExec, SealExec | SealShrink | SealGrow | SealWrite | SealFutureWrite},
		{SealExec | SealSeal, AllSeals},
	}
	for _, tt := range tests {
		if got := RestoredSeals(tt.in); got != tt.want {
			t.Errorf("RestoredSeals(%#x) = %#x, want %#x", tt.in, got, tt.want)
		}
	}
}

var roundTrips = []struct {
	name      string
	spec      Spec
	folios    int
	holes     uint64
	arrayPage int // pages of the folio array
}{
	{"one page", Spec{Size: 4096, Seed: 1}, 1, 0, 1},
	{"one byte", Spec{Size: 1, Seed: 2}, 1, 0, 1},
	{"multi-folio", Spec{Size: 3*4096 + 100, Pos: 77, Seed: 3}, 4, 0, 1},
	{"large folios", Spec{Size: 6 * 4096, Seed: 4, Folios: []Folio{{Index: 0, Order: 2}, {Index: 4, Order: 1}}}, 2, 0, 1},
	{"sparse", Spec{Size: 8*4096 + 5, Seed: 5, Folios: []Folio{{Index: 7}, {Index: 0}, {Index: 3}, {Index: 8}}}, 4, 5, 1},
	{"sealed", Spec{Size: 2 * 4096, Seed: 6, Seals: SealSeal | SealShrink | SealGrow | SealWrite}, 2, 0, 1},
	{"all seals", Spec{Size: 100, Seed: 7, Seals: AllSeals}, 1, 0, 1},
	{"empty", Spec{Seed: 8}, 0, 0, 0},
	{"all holes", Spec{Size: 3 * 4096, Seed: 9, Folios: []Folio{}}, 0, 3, 0},
	{"not up to date", Spec{Size: 2 * 4096, Seed: 10, Folios: []Folio{{Index: 0, Flags: FolioDirty}, {Index: 1}}}, 2, 0, 1},
	{"array over three pages", Spec{Size: 600 * 4096, Seed: 11}, 600, 0, 3},
}

// TestWriteRead writes each file through a kho-v4 Outgoing, reads it back
// from the handover the next kernel would get and checks size, folios,
// seals and checksum against the spec, and that every block the file uses
// is a preserved block of the radix tree.
func TestWriteRead(t *testing.T) {
	for _, tt := range roundTrips {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			wr, err := Write(w.out, tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			preserved, pf := w.handover()
			for _, b := range wr.Blocks {
				if o, ok := preserved[b.PA]; !ok || o != b.Order {
					t.Errorf("%s at %#x order %d: not a preserved block of the radix tree", b.What, b.PA, b.Order)
				}
			}
			f, err := Read(w.r, wr.PA, Options{Preserved: pf})
			if err != nil {
				t.Fatal(err)
			}
			content, err := tt.spec.Content()
			if err != nil {
				t.Fatal(err)
			}
			if f.Size() != tt.spec.Size || len(f.Folios) != tt.folios || f.Seals() != tt.spec.Seals || f.Ser.Pos != tt.spec.Pos || f.Holes != tt.holes {
				t.Errorf("read %s, pos %d, %d holes; want size %d, %d folios, seals %#x, pos %d, %d holes", f, f.Ser.Pos, f.Holes, tt.spec.Size, tt.folios, tt.spec.Seals, tt.spec.Pos, tt.holes)
			}
			if got, err := f.Content(w.r); err != nil || !bytes.Equal(got, content) {
				t.Errorf("Content: %v, equal to the spec's %v", err, bytes.Equal(got, content))
			}
			if f.Checksum != Checksum(content) || wr.Checksum != f.Checksum {
				t.Errorf("checksum read %#x, written %#x, of the content %#x", f.Checksum, wr.Checksum, Checksum(content))
			}
			if f.Skipped != 0 {
				t.Errorf("%d skipped entries", f.Skipped)
			}
			if pages := 0; f.Area != nil {
				pages = len(f.Area.Runs)
				if pages != tt.arrayPage {
					t.Errorf("folio array of %d pages, want %d", pages, tt.arrayPage)
				}
			} else if tt.arrayPage != 0 {
				t.Errorf("no folio array, want %d pages", tt.arrayPage)
			}
			var written []kho.Block
			for _, b := range wr.Blocks {
				written = append(written, kho.Block{PA: b.PA, Order: b.Order})
			}
			got := f.Blocks()
			sortBlocks(written)
			sortBlocks(got)
			if !slices.Equal(got, written) {
				t.Errorf("the reader finds blocks %+v, the writer used %+v", got, written)
			}
			if !strings.Contains(f.String(), fmt.Sprintf("size %d, %d folios, checksum %#08x", tt.spec.Size, tt.folios, f.Checksum)) {
				t.Errorf("summary %q", f)
			}
		})
	}
}

func sortBlocks(b []kho.Block) {
	slices.SortFunc(b, func(x, y kho.Block) int { return cmpU64(x.PA, y.PA) })
}

// TestContent: the logical content is the seeded bytes in up-to-date
// folios and zeros in holes and in folios that are not up to date; a
// file 7.2 would preserve (no holes) is just the seeded bytes.
func TestContent(t *testing.T) {
	seeded := make([]byte, 4*4096)
	payload.Fill(seeded, 42)
	full, err := Spec{Size: 4 * 4096, Seed: 42}.Content()
	if err != nil || !bytes.Equal(full, seeded) {
		t.Fatalf("full file: %v, equal %v", err, bytes.Equal(full, seeded))
	}
	sparse, err := Spec{Size: 4*4096 - 10, Seed: 42, Folios: []Folio{{Index: 1}, {Index: 2, Flags: FolioDirty}, {Index: 3}}}.Content()
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(seeded[:4*4096-10])
	clear(want[:4096])      // hole
	clear(want[8192:12288]) // not up to date
	if !bytes.Equal(sparse, want) {
		t.Error("sparse content differs")
	}
}

func TestSpecCheck(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		want error
	}{
		{"too large", Spec{Size: MaxWriteSize + 1}, unix.EFBIG},
		{"pos beyond MAX_LFS_FILESIZE", Spec{Size: 1, Pos: 1 << 63}, unix.EINVAL},
		{"unknown seal", Spec{Size: 1, Seals: 0x40}, unix.EOPNOTSUPP},
		{"order too large", Spec{Size: 4096, Folios: []Folio{{Order: 11}}}, unix.EINVAL},
		{"misaligned large folio", Spec{Size: 8 * 4096, Folios: []Folio{{Index: 2, Order: 2}}}, unix.EINVAL},
		{"folio beyond EOF", Spec{Size: 4096, Folios: []Folio{{Index: 1}}}, unix.EINVAL},
		{"two folios at one index", Spec{Size: 4 * 4096, Folios: []Folio{{Index: 0, Order: 1}, {Index: 1}}}, unix.EEXIST},
		{"unknown folio flag", Spec{Size: 4096, Folios: []Folio{{Flags: 4}}}, unix.EINVAL},
	}
	for _, tt := range tests {
		if _, err := Write(newWorld(t).out, tt.spec); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
}

// damaged writes a multi-folio file, finalizes, and returns the memory,
// the file and the preserved blocks for a test to damage.
func damaged(t *testing.T) (*world, *Written, map[uint64]uint) {
	w := newWorld(t)
	wr, err := Write(w.out, Spec{Size: 8 * 4096, Seed: 99, Folios: []Folio{{Index: 0, Order: 2}, {Index: 4}, {Index: 6}}})
	if err != nil {
		t.Fatal(err)
	}
	preserved, _ := w.handover()
	return w, wr, preserved
}

func (w *world) bytes(pa, n uint64) []byte {
	b, err := w.r.Bytes(pa, n)
	if err != nil {
		w.t.Fatal(err)
	}
	return b
}

func (w *world) block(wr *Written, what string) Block {
	for _, b := range wr.Blocks {
		if b.What == what {
			return b
		}
	}
	w.t.Fatalf("no block %q", what)
	return Block{}
}

// TestReadRejects damages one thing at a time and demands an error that
// says what is wrong. Each case names what 7.2's memfd_luo_retrieve does
// with the same damage.
func TestReadRejects(t *testing.T) {
	type env struct {
		w        *world
		wr       *Written
		ser      []byte // the memfd_luo_ser bytes, aliased
		array    []byte // the folio array, aliased
		pa       uint64 // where Read starts
		opt      Options
		preserve map[uint64]uint
	}
	setSer := func(e *env, edit func(s *Ser)) {
		s, _ := ParseSer(e.ser)
		edit(&s)
		s.Put(e.ser)
	}
	setFolio := func(e *env, i int, edit func(f *FolioSer)) {
		f := ParseFolioSer(e.array[i*FolioSerSize:])
		edit(&f)
		f.Put(e.array[i*FolioSerSize:])
	}
	tests := []struct {
		name   string
		damage func(e *env)
		want   string
	}{
		{"misaligned state", func(e *env) { e.pa += 8 }, "not the address of a kho_alloc_preserve block"},
		// kho_restore_free WARNs and leaks.
		{"state not preserved", func(e *env) { delete(e.preserve, e.pa) }, "memfd_luo_ser is not a preserved order-0 block"},
		// Never read by 7.2.
		{"flags set", func(e *env) { setSer(e, func(s *Ser) { s.Flags = 1 }) }, "flags 0x1: unused bits must be 0"},
		// EOPNOTSUPP.
		{"unknown seal", func(e *env) { setSer(e, func(s *Ser) { s.Seals |= 0x40 }) }, "seals 0x40 outside MEMFD_LUO_ALL_SEALS"},
		// vfs_setpos fails; its error is ignored.
		{"pos beyond MAX_LFS_FILESIZE", func(e *env) { setSer(e, func(s *Ser) { s.Pos = 1 << 63 }) }, "pos 0x8000000000000000 beyond MAX_LFS_FILESIZE"},
		// i_size_write takes anything.
		{"size beyond MAX_LFS_FILESIZE", func(e *env) { setSer(e, func(s *Ser) { s.Size = 1 << 63 }) }, "size 0x8000000000000000 beyond MAX_LFS_FILESIZE"},
		{"size beyond the limit", func(e *env) { setSer(e, func(s *Ser) { s.Size = DefaultMaxSize + 1 }) }, "beyond the reader's limit"},
		{"more folios than pages", func(e *env) { setSer(e, func(s *Ser) { s.Size = 2 * 4096 }) }, "nr_folios 3 for a file of 2 pages"},
		// 7.2 reads nr_folios entries past the end of the restored area.
		{"nr_folios beyond the array", func(e *env) {
			setSer(e, func(s *Ser) { s.Size = 1024 * 4096; s.NrFolios = 300 })
		}, "folio array of 1 pages for 300 entries, vcalloc makes 2"},
		{"no folios but a descriptor", func(e *env) { setSer(e, func(s *Ser) { s.NrFolios = 0 }) }, "no folios, but a folio descriptor"},
		{"array chunk damaged", func(e *env) {
			c := e.w.block(e.wr, "vmalloc chunk 0")
			binary.LittleEndian.PutUint64(e.w.bytes(c.PA, 16)[8:], 0x123)
		}, "is not a 4096-byte aligned run"},
		// kho_restore_vmalloc fails: the array page has no KHO magic.
		{"array page not preserved", func(e *env) { delete(e.preserve, e.w.block(e.wr, "folio array page 0").PA) }, "folio array block"},
		{"unknown folio flag", func(e *env) { setFolio(e, 1, func(f *FolioSer) { f.Flags |= 0x10 }) }, "folio 1: flags 0x13: unknown bits"},
		{"index at EOF", func(e *env) { setFolio(e, 2, func(f *FolioSer) { f.Index = 8 }) }, "index 8 at or beyond the file's 8 pages"},
		// kho_restore_folio fails: EIO.
		{"folio not preserved", func(e *env) { delete(e.preserve, e.w.block(e.wr, "folio index 4").PA) }, "folio 1 at"},
		{"folio frame off its block", func(e *env) { setFolio(e, 1, func(f *FolioSer) { f.PFN += 0x800 }) }, "is not preserved"},
		// shmem_add_to_page_cache's alignment assertion.
		{"large folio misaligned", func(e *env) { setFolio(e, 0, func(f *FolioSer) { f.Index = 2 }) }, "index 2 not aligned to its order 2"},
		// shmem_add_to_page_cache: EEXIST.
		{"two folios at one page", func(e *env) { setFolio(e, 2, func(f *FolioSer) { f.Index = 3 }) }, "both hold file page 3"},
		// The second kho_restore_folio of a frame fails.
		{"one frame twice", func(e *env) {
			pfn := ParseFolioSer(e.array[FolioSerSize:]).PFN
			setFolio(e, 2, func(f *FolioSer) { f.PFN = pfn })
		}, "overlap"},
		{"folio is the array page", func(e *env) {
			setFolio(e, 1, func(f *FolioSer) { f.PFN = e.w.block(e.wr, "folio array page 0").PA / kernel.PageSize })
		}, "overlap"},
		{"pfn beyond 52 address bits", func(e *env) {
			binary.LittleEndian.PutUint64(e.array[FolioSerSize:], 0xfffffffffffff|3<<52)
		}, "beyond 52 physical address bits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, wr, preserved := damaged(t)
			e := &env{w: w, wr: wr, ser: w.bytes(wr.PA, SerSize), pa: wr.PA, preserve: preserved}
			e.array = w.bytes(w.block(wr, "folio array page 0").PA, kernel.PageSize)
			e.opt.Preserved = func(pa uint64) (uint, bool) { o, ok := e.preserve[pa]; return o, ok }
			if _, err := Read(w.r, e.pa, e.opt); err != nil {
				t.Fatalf("undamaged: %v", err)
			}
			tt.damage(e)
			f, err := Read(w.r, e.pa, e.opt)
			if err == nil {
				t.Fatalf("accepted: %s", f)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to say %q", err, tt.want)
			}
		})
	}
}

// TestReadSkipsNullFrames: memfd_luo_retrieve_folios skips an entry with
// pfn 0; so does the reader, counting it, and the page reads as a hole.
func TestReadSkipsNullFrames(t *testing.T) {
	w := newWorld(t)
	spec := Spec{Size: 3 * 4096, Seed: 5}
	wr, err := Write(w.out, spec)
	if err != nil {
		t.Fatal(err)
	}
	_, pf := w.handover()
	array := w.bytes(w.block(wr, "folio array page 0").PA, kernel.PageSize)
	FolioSer{}.Put(array[FolioSerSize:])
	f, err := Read(w.r, wr.PA, Options{Preserved: pf})
	if err != nil {
		t.Fatal(err)
	}
	spec.Folios = []Folio{{Index: 0}, {Index: 2}}
	content, _ := spec.Content()
	if f.Skipped != 1 || len(f.Folios) != 2 || f.Holes != 1 || f.Checksum != Checksum(content) {
		t.Errorf("%s, %d skipped, %d holes; want 2 folios, 1 skipped, 1 hole, checksum %#x", f, f.Skipped, f.Holes, Checksum(content))
	}
}

// TestReadWithoutMemoryMap: without Preserved, every folio counts as one
// page and nothing is checked against a memory map.
func TestReadWithoutMemoryMap(t *testing.T) {
	w := newWorld(t)
	spec := Spec{Size: 2*4096 + 9, Seed: 3}
	wr, err := Write(w.out, spec)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Read(w.r, wr.PA, Options{})
	if err != nil || f.Checksum != wr.Checksum || len(f.Folios) != 3 {
		t.Errorf("%v, %v; want checksum %#x", f, err, wr.Checksum)
	}
	if _, err := Read(w.r, testBase+16<<20, Options{}); err == nil || errors.Is(err, ErrBad) {
		t.Errorf("state outside memory: %v, want a read error", err)
	}
}

func BenchmarkRead(b *testing.B) {
	w := newWorld(b)
	wr, err := Write(w.out, Spec{Size: 8 << 20, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	_, pf := w.handover()
	b.SetBytes(8 << 20)
	for b.Loop() {
		if _, err := Read(w.r, wr.PA, Options{Preserved: pf}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestExamples writes every example into one handover and reads each back:
// the shapes they promise, and content that changes with the boot.
func TestExamples(t *testing.T) {
	w := newWorld(t)
	var written []*Written
	for _, ex := range Examples(3) {
		wr, err := Write(w.out, ex.Spec)
		if err != nil {
			t.Fatalf("%s: %v", ex.Name, err)
		}
		written = append(written, wr)
	}
	_, pf := w.handover()
	files := map[string]*File{}
	for i, ex := range Examples(3) {
		f, err := Read(w.r, written[i].PA, Options{Preserved: pf})
		if err != nil {
			t.Fatalf("%s: %v", ex.Name, err)
		}
		if f.Checksum != written[i].Checksum {
			t.Errorf("%s: checksum %#x, written %#x", ex.Name, f.Checksum, written[i].Checksum)
		}
		files[ex.Name] = f
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"memfd-multi has several folios and a position", len(files["memfd-multi"].Folios) == 6 && files["memfd-multi"].Ser.Pos != 0},
		{"memfd-large has large folios", files["memfd-large"].Folios[0].Order == 2 && files["memfd-large"].Holes == 0},
		{"memfd-sparse has holes", files["memfd-sparse"].Holes == 6},
		{"memfd-sealed is sealed", files["memfd-sealed"].Seals() == SealSeal|SealShrink|SealGrow|SealWrite},
		{"memfd-empty is empty", files["memfd-empty"].Size() == 0 && files["memfd-empty"].Area == nil},
	}
	for _, c := range checks {
		if !c.ok {
			t.Error(c.name + ": no")
		}
	}
	if Examples(3)[0].Spec.Seed == Examples(4)[0].Spec.Seed {
		t.Error("the seed does not change with the boot")
	}
}

func TestExampleSpec(t *testing.T) {
	shapes := ExampleShapes()
	if len(shapes) != len(Examples(0)) {
		t.Fatalf("ExampleShapes() = %v, want one per example", shapes)
	}
	for i, shape := range shapes {
		s, ok := ExampleSpec(shape, 42)
		if !ok {
			t.Fatalf("ExampleSpec(%q): not found", shape)
		}
		want := Examples(0)[i].Spec
		if s.Seed != 42 || s.Size != want.Size || s.Seals != want.Seals || len(s.Folios) != len(want.Folios) {
			t.Errorf("ExampleSpec(%q, 42) = %+v, want %+v with seed 42", shape, s, want)
		}
		if err := s.Check(); err != nil {
			t.Errorf("ExampleSpec(%q): %v", shape, err)
		}
	}
	if _, ok := ExampleSpec("nonesuch", 1); ok {
		t.Error("ExampleSpec(nonesuch) found a spec")
	}
}

// Put and ParseSer encode the struct field by field with encoding/binary:
// the Go struct must be exactly the C struct's size, and a round trip
// must keep every field where the kernel has it.
func TestSerEncoding(t *testing.T) {
	if got := binary.Size(Ser{}); got != SerSize {
		t.Fatalf("binary.Size(Ser) = %d, want sizeof(struct memfd_luo_ser) %d", got, SerSize)
	}
	s := Ser{Pos: 0x1122, Size: 0x3344, Seals: SealWrite, Flags: 0, NrFolios: 3,
		Folios: kho.Vmalloc{First: 0x10005000, TotalPages: 1, Flags: kho.VmallocFlagAlloc, Order: 0}}
	b := make([]byte, SerSize)
	s.Put(b)
	le := binary.LittleEndian
	if le.Uint64(b[8:]) != s.Size || le.Uint32(b[16:]) != s.Seals || le.Uint64(b[24:]) != s.NrFolios || le.Uint64(b[32:]) != s.Folios.First || le.Uint16(b[44:]) != s.Folios.Flags {
		t.Fatalf("Put: fields not at the kernel's offsets: % x", b)
	}
	got, err := ParseSer(b)
	if err != nil || got != s {
		t.Fatalf("ParseSer(Put(s)) = %+v, %v; want %+v", got, err, s)
	}
	if _, err := ParseSer(b[:SerSize-1]); err == nil {
		t.Fatal("ParseSer of a short buffer: no error")
	}
}

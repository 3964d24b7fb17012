package memfd

import (
	"fmt"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/kho"
)

// fuzzMem is separately stored pages, every one of them a preserved
// order-0 block.
type fuzzMem map[uint64][]byte

func (m fuzzMem) Bytes(pa, n uint64) ([]byte, error) {
	p, ok := m[pa&^(kernel.PageSize-1)]
	if !ok || pa%kernel.PageSize+n > kernel.PageSize {
		return nil, fmt.Errorf("no memory at %#x+%d: %w", pa, n, unix.EFAULT)
	}
	return p[pa%kernel.PageSize:][:n], nil
}

func (m fuzzMem) preserved(pa uint64) (uint, bool) { _, ok := m[pa]; return 0, ok }

// The fuzz layout: the memfd_luo_ser at serPA, a chunk at chunkPA, the
// folio array at arrayPA, folios at folioPA and folioPA+4096.
const (
	serPA   = 0x1000
	chunkPA = 0x2000
	arrayPA = 0x3000
	folioPA = 0x4000
)

// FuzzRead feeds arbitrary bytes as the state, the chunk and the array
// of a file whose two folio pages exist: Read must not panic and what it
// accepts must add up.
func FuzzRead(f *testing.F) {
	valid := func(size uint64, seals uint32, entries ...FolioSer) []byte {
		b := make([]byte, SerSize+2*64)
		Ser{Size: size, Seals: seals, NrFolios: uint64(len(entries)), Folios: kho.Vmalloc{First: chunkPA, TotalPages: 1, Flags: kho.VmallocFlagAlloc}}.Put(b)
		copy(b[SerSize+kho.VmallocChunkHeaderSize:], []byte{arrayPA >> 0 & 0xff, arrayPA >> 8})
		for i, e := range entries {
			e.Put(b[SerSize+64+i*FolioSerSize:])
		}
		return b
	}
	f.Add(valid(2*4096, SealSeal, FolioSer{PFN: folioPA / kernel.PageSize, Flags: 3}, FolioSer{PFN: folioPA/kernel.PageSize + 1, Flags: 3, Index: 1}))
	f.Add(valid(3*4096+1, 0, FolioSer{PFN: folioPA/kernel.PageSize + 1, Flags: 1, Index: 3}))
	f.Add(valid(0, 0))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m := fuzzMem{}
		for _, pa := range []uint64{serPA, chunkPA, arrayPA, folioPA, folioPA + kernel.PageSize} {
			m[pa] = make([]byte, kernel.PageSize)
		}
		// The state whole; the chunk's first 64 bytes; the array's first 64.
		rest := b[copy(m[serPA][:SerSize], b):]
		rest = rest[copy(m[chunkPA][:64], rest):]
		copy(m[arrayPA][:64], rest)
		for i := range m[folioPA] {
			m[folioPA][i] = byte(i)
		}
		file, err := Read(m, serPA, Options{Preserved: m.preserved, MaxSize: 1 << 20})
		if err != nil {
			return
		}
		if uint64(len(file.Folios)+file.Skipped) != file.Ser.NrFolios {
			t.Fatalf("%d folios and %d skipped of nr_folios %d", len(file.Folios), file.Skipped, file.Ser.NrFolios)
		}
		if file.Holes > pages(file.Size()) || file.Ser.Seals&^AllSeals != 0 {
			t.Fatalf("accepted %s with %d holes", file, file.Holes)
		}
		for _, fo := range file.Folios {
			if _, ok := m[fo.PA()]; !ok || fo.Index >= pages(file.Size()) {
				t.Fatalf("accepted folio %+v", fo)
			}
		}
	})
}

package gen72

import (
	"sort"
	"testing"

	"github.com/kho-sim/kho-sim/pkg/kho"
)

// checkHandover walks everything a successful Decode returned and checks
// the promises Decode makes.
func checkHandover(t *testing.T, h *Handover) {
	t.Helper()
	if h == nil || h.Root == nil || h.MemoryMap == nil {
		t.Fatalf("incomplete handover %+v", h)
	}
	for _, s := range h.Structures() {
		if !h.MemoryMap.Contains(s.PA, s.Size) || s.PA%PageSize != 0 {
			t.Fatalf("%s at %#x (%d bytes) not in one preserved block", s.What, s.PA, s.Size)
		}
	}
	pages := h.Pages()
	if !sort.SliceIsSorted(pages, func(i, j int) bool { return pages[i] < pages[j] }) {
		t.Fatal("Pages() not sorted")
	}
	for i := 1; i < len(pages); i++ {
		if pages[i] == pages[i-1] {
			t.Fatalf("page %#x listed twice", pages[i])
		}
	}
	for i := 1; i < len(h.MemoryMap.Blocks); i++ {
		if h.MemoryMap.Blocks[i-1].End() > h.MemoryMap.Blocks[i].PA {
			t.Fatal("overlapping blocks")
		}
	}
	if l := h.LUO; l != nil {
		for _, s := range l.Sessions {
			if uint64(len(s.Files)) != s.FileCount || len(s.Name) >= SessionNameLen {
				t.Fatalf("session %+v", s)
			}
		}
		if l.FLB != nil && uint64(len(l.FLB.Entries)) > (l.FLB.PageCount*PageSize-FLBHeaderSize)/FLBEntrySize {
			t.Fatalf("FLB table %+v overflows its pages", l.FLB)
		}
	}
}

// FuzzDecode damages one page of the real handover at a time.
func FuzzDecode(f *testing.F) {
	d, h := realHandover(f)
	addrs := d.Pages.Addresses()
	index := func(pa uint64) uint16 {
		return uint16(sort.Search(len(addrs), func(i int) bool { return addrs[i] >= pa }))
	}
	f.Add(index(h.Root.MemoryMapPA), uint16(16), []byte{0xff})
	f.Add(index(h.LUO.SessionsPA), uint16(8), []byte{0x40})
	f.Add(index(h.LUO.FLBsPA), uint16(8), []byte{0x3f})
	f.Add(index(h.LUO.Sessions[0].FilesPA), uint16(0), []byte{0, 0x80, 0x3d})
	f.Add(index(h.Root.PA), uint16(0x3c), []byte("kho"))
	f.Add(index(h.LUO.PA), uint16(16), []byte{0x10})
	f.Fuzz(func(t *testing.T, page, off uint16, data []byte) {
		s := d.Pages.Clone()
		p := s.Page(addrs[int(page)%len(addrs)])
		copy(p[int(off)%PageSize:], data)
		h, err := Decode(s, d.Setup.FDTAddr, d.Setup.FDTSize)
		if err != nil {
			if h != nil {
				t.Fatalf("handover with error %v", err)
			}
			return
		}
		checkHandover(t, h)
	})
}

// FuzzDecodeFlat decodes arbitrary bytes laid out as physical memory from
// 0x1000, with the root FDT at its start.
func FuzzDecodeFlat(f *testing.F) {
	d := loadDump(f, "handover.txt")
	f.Add(d.Pages.Page(d.Setup.FDTAddr)[:300])
	f.Add([]byte{0xd0, 0x0d, 0xfe, 0xed})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64*PageSize {
			return
		}
		s := kho.NewPageStore()
		for off := 0; off < len(data); off += PageSize {
			s.Add(0x1000+uint64(off), data[off:min(off+PageSize, len(data))])
		}
		h, err := Decode(s, 0x1000, 0)
		if err != nil {
			if h != nil {
				t.Fatalf("handover with error %v", err)
			}
			return
		}
		checkHandover(t, h)
	})
}

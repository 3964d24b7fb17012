package gen72

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/kho-sim/kho-sim/pkg/fdt"
)

// The test data was captured from Debian's linux-source-7.2 (7.2.13) built
// by scripts/luo-kernel/build.sh and run by scripts/luo-kernel/capture.sh:
// guest/luo preserved two sessions with four memfds, kexec'd into the same
// kernel, and QEMU saved RAM between the old kernel's serialization and the
// new kernel's start. handover.txt holds the pages of that image;
// guest-dump.txt what the guest read through /dev/mem after the kexec.

// testFLBData is TEST_FLB_MAGIC_BASE of lib/tests/liveupdate.c.
const testFLBData = 0xfeedf00dcafebee0

func TestRealRoot(t *testing.T) {
	d, h := realHandover(t)
	r := h.Root
	if r.PA != d.Setup.FDTAddr || d.Setup.FDTSize != PageSize {
		t.Errorf("root at %#x, setup says %#x size %d", r.PA, d.Setup.FDTAddr, d.Setup.FDTSize)
	}
	// kho_add_subtree puts each child before the others: LUO (a late
	// initcall) comes before kexec-metadata (KHO's own fs initcall).
	var names []string
	for _, s := range r.Subtrees {
		names = append(names, s.Name)
	}
	if fmt.Sprint(names) != "[LUO kexec-metadata]" {
		t.Errorf("children %v, want [LUO kexec-metadata]", names)
	}
	if s := r.Subtree(LUOName); s == nil || s.Size != LUOSize {
		t.Errorf("LUO child %+v, want blob-size %d", s, LUOSize)
	}
	if s := r.Subtree(MetadataName); s == nil || s.Size != MetadataSize {
		t.Errorf("kexec-metadata child %+v, want blob-size %d", s, MetadataSize)
	}

	// Facts of the bytes that the reader does not need: an empty
	// reservation map, and in each child blob-size before preserved-data
	// (fdt_setprop inserts a new property first).
	tree, err := fdt.Parse(d.Pages.Page(r.PA))
	if err != nil {
		t.Fatal(err)
	}
	if len(tree.Reserved) != 0 {
		t.Errorf("reservation map %v, want empty", tree.Reserved)
	}
	for _, c := range tree.Root.Children {
		if len(c.Props) != 2 || c.Props[0].Name != SizeProp || c.Props[1].Name != DataProp {
			t.Errorf("child %q properties %v, want [%s %s]", c.Name, c.Props, SizeProp, DataProp)
		}
	}
	if got := tree.Root.Props[0].Name; got != "compatible" {
		t.Errorf("first root property %q, want compatible", got)
	}
}

func TestRealMemoryMap(t *testing.T) {
	_, h := realHandover(t)
	mm := h.MemoryMap
	if len(mm.Nodes) < treeDepth {
		t.Errorf("%d radix nodes, a tree with a leaf has at least %d", len(mm.Nodes), treeDepth)
	}
	if mm.Nodes[0] != h.Root.MemoryMapPA {
		t.Errorf("first node %#x, want the root %#x", mm.Nodes[0], h.Root.MemoryMapPA)
	}
	// The radix nodes are ordinary kernel pages, never preserved.
	for _, pa := range mm.Nodes {
		if mm.Contains(pa, 1) {
			t.Errorf("radix node %#x is preserved", pa)
		}
	}
	// Every LUO and KHO structure, and each memfd's serialized state.
	for _, s := range h.Structures() {
		if b, ok := mm.Find(s.PA); !ok || b.PA != s.PA {
			t.Errorf("%s at %#x: preserved block %+v, want one starting there", s.What, s.PA, b)
		}
	}
	for _, s := range h.LUO.Sessions {
		for _, f := range s.Files {
			if !mm.Contains(f.Data, 40) {
				t.Errorf("memfd state %#x of token %#x not preserved", f.Data, f.Token)
			}
		}
	}
	for _, b := range mm.Blocks {
		if got, err := decodeKey(b.Key()); err != nil || got != b {
			t.Errorf("block %+v: key %#x decodes to %+v, %v", b, b.Key(), got, err)
		}
	}
}

func TestRealLUO(t *testing.T) {
	_, h := realHandover(t)
	l := h.LUO
	if l == nil {
		t.Fatal("no LUO")
	}
	if l.LiveupdateNum != 1 {
		t.Errorf("liveupdate_num %d, want 1 (the first kernel was cold booted)", l.LiveupdateNum)
	}
	if len(l.SessionBlocks) != 1 || l.SessionBlocks[0] != l.SessionsPA {
		t.Errorf("session blocks %#x, want just %#x", l.SessionBlocks, l.SessionsPA)
	}
	// guest/luo's plan, in creation order.
	want := []struct {
		name   string
		tokens []uint64
	}{
		{"kho-sim-a", []uint64{0x1001, 0x1002, 0x1003}},
		{"kho-sim-b", []uint64{0x2001}},
	}
	if len(l.Sessions) != len(want) {
		t.Fatalf("%d sessions, want %d", len(l.Sessions), len(want))
	}
	for i, w := range want {
		s := l.Sessions[i]
		if s.Name != w.name || s.FileCount != uint64(len(w.tokens)) || len(s.Files) != len(w.tokens) {
			t.Errorf("session %d: %q with %d (%d) files, want %q with %d", i, s.Name, s.FileCount, len(s.Files), w.name, len(w.tokens))
			continue
		}
		for j, tok := range w.tokens {
			f := s.Files[j]
			if f.Compatible != "memfd-v2" || f.Token != tok || f.Data == 0 || f.Data%PageSize != 0 {
				t.Errorf("session %q file %d: %+v, want memfd-v2 token %#x with a page-aligned state", s.Name, j, f, tok)
			}
		}
	}
	if l.FileCount() != 4 {
		t.Errorf("%d files, want 4", l.FileCount())
	}

	// CONFIG_LIVEUPDATE_TEST registers three FLBs on every file handler,
	// so each counts all four memfds.
	flb := l.FLB
	if flb == nil || flb.PA != l.FLBsPA || flb.PageCount != FLBPages || len(flb.Entries) != 3 {
		t.Fatalf("FLB table %+v, want 3 entries in %d page at %#x", flb, FLBPages, l.FLBsPA)
	}
	for i, e := range flb.Entries {
		want := FLB{Name: fmt.Sprintf("liveupdate-test-flb-v%d", i), Data: testFLBData + uint64(i), Count: 4}
		if e != want {
			t.Errorf("FLB %d: %+v, want %+v", i, e, want)
		}
	}
}

func TestRealKexecMetadata(t *testing.T) {
	_, h := realHandover(t)
	want := KexecMetadata{PA: h.Root.Subtree(MetadataName).PA, Size: MetadataSize, Version: 1, PreviousRelease: "7.2.13", KexecCount: 1}
	if h.Metadata == nil || *h.Metadata != want {
		t.Errorf("kexec-metadata %+v, want %+v", h.Metadata, want)
	}
}

// TestRealFLBPage pins the exact bytes the kernel wrote into the FLB page.
func TestRealFLBPage(t *testing.T) {
	d, h := realHandover(t)
	page := d.Pages.Page(h.LUO.FLBsPA)
	want := make([]byte, FLBHeaderSize+3*FLBEntrySize)
	copy(want, []byte{1, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0})
	for i := 0; i < 3; i++ {
		e := want[FLBHeaderSize+i*FLBEntrySize:]
		copy(e, fmt.Sprintf("liveupdate-test-flb-v%d", i))
		copy(e[48:], []byte{0xe0 + byte(i), 0xbe, 0xfe, 0xca, 0x0d, 0xf0, 0xed, 0xfe, 4, 0, 0, 0, 0, 0, 0, 0})
	}
	if !bytes.Equal(page[:len(want)], want) {
		t.Errorf("FLB page starts\n%x\nwant\n%x", page[:len(want)], want)
	}
	if !bytes.Equal(page[len(want):], make([]byte, PageSize-len(want))) {
		t.Error("FLB page not zero after the entries")
	}
}

// TestRealGuestDump checks what the guest could still read after the
// kexec: the LUO blob is gone (luo_early_startup frees it with
// kho_restore_free and the page is reused before /init), everything else
// it printed matches the image taken at the kexec.
func TestRealGuestDump(t *testing.T) {
	d, h := realHandover(t)
	g := loadDump(t, "guest-dump.txt")
	if *g.Setup != *d.Setup {
		t.Errorf("guest setup %+v, image %+v", *g.Setup, *d.Setup)
	}
	_, err := Decode(g.Pages, g.Setup.FDTAddr, g.Setup.FDTSize)
	if !errors.Is(err, ErrBadCompatible) {
		t.Errorf("decoding the guest's dump: %v, want %v at the reused LUO page", err, ErrBadCompatible)
	}
	if m, err := ReadMemoryMap(g.Pages, h.Root.MemoryMapPA); err != nil || len(m.Blocks) != len(h.MemoryMap.Blocks) {
		t.Errorf("guest's radix snapshot: %v, %v", m, err)
	}
	for _, pa := range g.Pages.Addresses() {
		img := d.Pages.Page(pa)
		if img == nil {
			t.Errorf("guest page %#x not in the image's dump", pa)
			continue
		}
		if same := bytes.Equal(img, g.Pages.Page(pa)); same == (pa == h.LUO.PA) {
			t.Errorf("page %#x: identical %v, want %v", pa, same, pa != h.LUO.PA)
		}
	}
}

package luo_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/kho-sim/kho-sim/internal/realhandover"
	"github.com/kho-sim/kho-sim/pkg/fdt"
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/luo"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// The test data was captured from Debian's linux-source-7.2 (7.2.13) built
// by scripts/luo-kernel/build.sh and run by scripts/luo-kernel/capture.sh:
// guest/luo preserved two sessions with four memfds, kexec'd into the same
// kernel, and QEMU saved RAM between the old kernel's serialization and the
// new kernel's start (internal/realhandover).

// testFLBData is TEST_FLB_MAGIC_BASE of lib/tests/liveupdate.c.
const testFLBData = 0xfeedf00dcafebee0

// realHandover reads the captured handover strictly, failing the test on
// any finding.
func realHandover(t testing.TB) (*kho.Dump, *luo.Handover) {
	t.Helper()
	d := realhandover.Load(t, realhandover.Handover)
	h, err := luo.Read(d.Pages, d.Setup.FDTAddr)
	if err != nil {
		t.Fatalf("read the real handover: %v", err)
	}
	return d, h
}

// TestRealHandover reads what a real 7.2 kernel handed over: guest/luo's
// two sessions and four memfds, the kernel's three test FLBs each counting
// all four files, and the kexec-metadata of the first kexec.
func TestRealHandover(t *testing.T) {
	d, h := realHandover(t)
	if h.Generation != kernel.V72 || h.Detected != luo.Expected(kernel.V72) {
		t.Errorf("generation %s, detected %v", h.Generation, h.Detected)
	}
	if h.LiveupdateNumber != 1 || h.Compatible != luo.SerCompatible || h.Ser == nil || h.Ser.Size != luo.SerSize {
		t.Errorf("luo_ser %+v: number %d compatible %q, want 1 %q", h.Ser, h.LiveupdateNumber, h.Compatible, luo.SerCompatible)
	}
	// kho_add_subtree puts each child before the others: LUO (a late
	// initcall) comes before kexec-metadata (KHO's own fs initcall).
	if got := h.In.SubtreeNames(); !slices.Equal(got, []string{luo.FDTKHOEntryName, kho.KexecMetadataName}) {
		t.Errorf("children %v", got)
	}
	want := []struct {
		name   string
		tokens []uint64
	}{
		{"kho-sim-a", []uint64{0x1001, 0x1002, 0x1003}},
		{"kho-sim-b", []uint64{0x2001}},
	}
	if h.Sessions == nil || len(h.Sessions.Sessions) != len(want) || len(h.Sessions.Blocks) != 1 || h.Sessions.Blocks[0].PA != h.SessionsPA {
		t.Fatalf("sessions %+v", h.Sessions)
	}
	for i, w := range want {
		s := h.Sessions.Sessions[i]
		if s.Name != w.name || s.Count != uint64(len(w.tokens)) || len(s.Files) != len(w.tokens) {
			t.Errorf("session %d: %q with %d (%d) files, want %q with %d", i, s.Name, s.Count, len(s.Files), w.name, len(w.tokens))
			continue
		}
		for j, tok := range w.tokens {
			f := s.Files[j]
			if f.Compatible != "memfd-v2" || f.Token != tok || f.Data == 0 || f.Data%physmem.PageSize != 0 || !h.In.InOneBlock(f.Data, 40) {
				t.Errorf("session %q file %d: %+v, want memfd-v2 token %#x with a preserved page-aligned state", s.Name, j, f, tok)
			}
		}
	}
	if h.FLB == nil || h.FLB.PA != h.FLBsPA || h.FLB.PageCount != 1 || len(h.FLB.Entries) != 3 {
		t.Fatalf("FLB table %+v", h.FLB)
	}
	for i, e := range h.FLB.Entries {
		want := luo.FLBEntry{Index: i, Name: fmt.Sprintf("liveupdate-test-flb-v%d", i), NameTerminated: true, Data: testFLBData + uint64(i), Count: 4}
		if e != want {
			t.Errorf("FLB %d: %+v, want %+v", i, e, want)
		}
	}
	if m := h.KexecMetadata; m == nil || *m != (kho.KexecMetadata{Version: 1, PreviousRelease: "7.2.13", KexecCount: 1}) {
		t.Errorf("kexec-metadata %+v", m)
	}
	// Every structure starts a preserved block of its own; the radix nodes
	// are ordinary pages, never preserved, and in the dump.
	for _, s := range h.Structures() {
		if !h.In.InOneBlock(s.PA, s.Size) || s.PA%physmem.PageSize != 0 {
			t.Errorf("%s at %#x (%d bytes) not page aligned in one preserved block", s.What, s.PA, s.Size)
		}
	}
	for _, pa := range h.In.MapPages() {
		if h.In.InOneBlock(pa, 1) || d.Pages.Page(pa) == nil {
			t.Errorf("radix node %#x is preserved or not dumped", pa)
		}
	}
	for _, pa := range h.Pages() {
		if d.Pages.Page(pa) == nil {
			t.Errorf("page %#x of the handover is not in the dump", pa)
		}
	}
}

// TestRealFLBPage pins the exact bytes the kernel wrote into the FLB page.
func TestRealFLBPage(t *testing.T) {
	d, h := realHandover(t)
	page := d.Pages.Page(h.FLBsPA)
	want := make([]byte, 16+3*64)
	copy(want, []byte{1, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0})
	for i := range 3 {
		e := want[16+i*64:]
		copy(e, fmt.Sprintf("liveupdate-test-flb-v%d", i))
		copy(e[48:], []byte{0xe0 + byte(i), 0xbe, 0xfe, 0xca, 0x0d, 0xf0, 0xed, 0xfe, 4, 0, 0, 0, 0, 0, 0, 0})
	}
	if !bytes.Equal(page[:len(want)], want) || !bytes.Equal(page[len(want):], make([]byte, physmem.PageSize-len(want))) {
		t.Errorf("FLB page starts\n%x\nwant\n%x", page[:len(want)], want)
	}
}

// TestRealGuestDump reads what the guest could still see after the kexec:
// the LUO blob is gone (luo_early_startup frees it with kho_restore_free
// and the page is reused before /init); the radix tree is stage 1's
// snapshot and still complete.
func TestRealGuestDump(t *testing.T) {
	d, h := realHandover(t)
	g := realhandover.Load(t, realhandover.GuestDump)
	if *g.Setup != *d.Setup {
		t.Errorf("guest setup %+v, image %+v", *g.Setup, *d.Setup)
	}
	gh, err := luo.Read(g.Pages, g.Setup.FDTAddr)
	if err == nil || !strings.Contains(err.Error(), "LUO blob compatible") || gh.Where != luo.WhereBlob {
		t.Errorf("reading the guest's dump: %v, want the reused LUO page refused", err)
	}
	if len(gh.In.Blocks()) != len(h.In.Blocks()) {
		t.Errorf("guest's radix snapshot: %d blocks, want %d", len(gh.In.Blocks()), len(h.In.Blocks()))
	}
	for _, pa := range g.Pages.Addresses() {
		img := d.Pages.Page(pa)
		if img == nil {
			t.Errorf("guest page %#x not in the image's dump", pa)
			continue
		}
		if same := bytes.Equal(img, g.Pages.Page(pa)); same == (pa == h.Ser.PA) {
			t.Errorf("page %#x: identical %v, want %v", pa, same, pa != h.Ser.PA)
		}
	}
}

// damager edits a copy of the real handover's pages.
type damager struct {
	s    *kho.PageStore
	h    *luo.Handover // the undamaged read, for addresses
	next uint64        // next free page for new radix nodes
}

func (c *damager) put64(t *testing.T, pa uint64, v uint64) {
	t.Helper()
	c.put(t, pa, binary.LittleEndian.AppendUint64(nil, v))
}

func (c *damager) put(t *testing.T, pa uint64, b []byte) {
	t.Helper()
	p := c.s.Page(pa &^ (physmem.PageSize - 1))
	if p == nil {
		t.Fatalf("no page at %#x", pa)
	}
	copy(p[pa%physmem.PageSize:], b)
}

func (c *damager) editRoot(t *testing.T, edit func(root *fdt.Node)) {
	t.Helper()
	pa := c.h.In.RootPA()
	tree, err := fdt.Parse(c.s.Page(pa))
	if err != nil {
		t.Fatal(err)
	}
	edit(tree.Root)
	blob, err := fdt.Encode(tree)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.s.Add(pa, blob); err != nil {
		t.Fatal(err)
	}
}

func setProp(n *fdt.Node, name string, v []byte) {
	for i := range n.Props {
		if n.Props[i].Name == name {
			n.Props[i].Value = v
			return
		}
	}
	n.Props = append(n.Props, fdt.Property{Name: name, Value: v})
}

func le64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

// setKey sets (or clears) the radix bit of the block at pa of order,
// creating missing nodes in fresh pages.
func (c *damager) setKey(t *testing.T, key uint64, on bool) {
	t.Helper()
	mapPA, _ := c.h.In.Root().Root.U64(kho.PropMemoryMap)
	node := mapPA
	for level := kho.RadixLevels; level > 0; level-- {
		slot := node + (key>>uint((level-1)*9+15))%512*8
		child := binary.LittleEndian.Uint64(c.s.Page(node)[slot%physmem.PageSize:])
		if child == 0 {
			child = c.next
			c.next += physmem.PageSize
			if err := c.s.Add(child, nil); err != nil {
				t.Fatal(err)
			}
			c.put64(t, slot, child)
		}
		node = child
	}
	bit := key % (1 << 15)
	p := c.s.Page(node)
	if on {
		p[bit/8] |= 1 << (bit % 8)
	} else {
		p[bit/8] &^= 1 << (bit % 8)
	}
}

// TestReadRealHandoverDamage damages a copy of the real handover in each
// way the strict reader must refuse, from the root FDT to the radix tree:
// Read reports it, with the handover's kernel where that kernel notices.
func TestReadRealHandoverDamage(t *testing.T) {
	d, good := realHandover(t)
	mapPA, _ := good.In.Root().Root.U64(kho.PropMemoryMap)
	nodes := good.In.MapPages()
	blob := good.Ser.PA
	metaPA, _, _ := good.In.SubtreeBlob(kho.KexecMetadataName)
	sess := func(i uint64) uint64 { return good.SessionsPA + luo.BlockHeaderSize + i*luo.SessionEntrySize }
	file := func(s int, i uint64) uint64 {
		return good.Sessions.Sessions[s].FilesPA + luo.BlockHeaderSize + i*luo.FileEntrySize
	}
	flbEntry := func(i uint64) uint64 { return good.FLBsPA + 16 + i*64 }
	files0, files1 := good.Sessions.Sessions[0].FilesPA, good.Sessions.Sessions[1].FilesPA
	panics := kernel.V72.Does(kernel.PanicsAtBoot)
	tests := []struct {
		name   string
		damage func(t *testing.T, c *damager)
		want   string // in the error
	}{
		{"root compatible kho-v3", func(t *testing.T, c *damager) {
			c.editRoot(t, func(r *fdt.Node) { setProp(r, "compatible", []byte("kho-v3\x00")) })
		}, `"kho-v3", not "kho-v1" or "kho-v4"`},
		{"root compatible list", func(t *testing.T, c *damager) {
			c.editRoot(t, func(r *fdt.Node) { setProp(r, "compatible", []byte("kho-v4\x00kho-v3\x00")) })
		}, `7.2 writes exactly "kho-v4"`},
		{"memory map a u32", func(t *testing.T, c *damager) {
			c.editRoot(t, func(r *fdt.Node) { setProp(r, kho.PropMemoryMap, []byte{0, 0x30, 0x16, 0}) })
		}, kho.PropMemoryMap},
		{"memory map null", func(t *testing.T, c *damager) {
			c.editRoot(t, func(r *fdt.Node) { setProp(r, kho.PropMemoryMap, le64(0)) })
		}, "empty preserved-memory-map"},
		{"child without blob-size", func(t *testing.T, c *damager) {
			c.editRoot(t, func(r *fdt.Node) { n := r.Child(luo.FDTKHOEntryName); n.Props = n.Props[1:] })
		}, "missing or invalid blob-size"},
		{"LUO blob-size 31", func(t *testing.T, c *damager) {
			c.editRoot(t, func(r *fdt.Node) { setProp(r.Child(luo.FDTKHOEntryName), kho.PropBlobSize, le64(31)) })
		}, "smaller than struct luo_ser (32); " + panics},
		{"blob-size beyond a page", func(t *testing.T, c *damager) {
			c.editRoot(t, func(r *fdt.Node) { setProp(r.Child(kho.KexecMetadataName), kho.PropBlobSize, le64(physmem.PageSize+1)) })
		}, "more than the 4096 the kernel allocates"},
		{"LUO blob misaligned", func(t *testing.T, c *damager) {
			c.editRoot(t, func(r *fdt.Node) { setProp(r.Child(luo.FDTKHOEntryName), kho.PropBlobData, le64(blob+8)) })
		}, "not page aligned"},
		{"kexec-metadata is the FLB page", func(t *testing.T, c *damager) {
			c.editRoot(t, func(r *fdt.Node) { setProp(r.Child(kho.KexecMetadataName), kho.PropBlobData, le64(good.FLBsPA)) })
		}, "shares a page with FLB page"},
		{"LUO compatible luo-v4", func(t *testing.T, c *damager) { c.put(t, blob, []byte("luo-v4")) }, `compatible "luo-v4", want "luo-v5"`},
		{"LUO compatible unterminated", func(t *testing.T, c *damager) { c.put(t, blob, []byte("luo-v5xy")) }, `compatible "luo-v5xy"`},
		{"liveupdate number 0", func(t *testing.T, c *damager) { c.put64(t, blob+8, 0) }, "liveupdate number 0"},
		{"sessions_pa unmapped", func(t *testing.T, c *damager) { c.put64(t, blob+16, 0x7fff0000) }, "not in the preserved-memory map"},
		{"session block count 0", func(t *testing.T, c *damager) { c.put64(t, good.SessionsPA+8, 0) }, "count 0, want 1 to 51"},
		{"session block count 52", func(t *testing.T, c *damager) {
			c.put64(t, good.SessionsPA+8, luo.SessionsPerBlock+1)
		}, "count 52, want 1 to 51"},
		{"session block links to itself", func(t *testing.T, c *damager) { c.put64(t, good.SessionsPA, good.SessionsPA) }, "loops back"},
		{"session block links to a file block", func(t *testing.T, c *damager) { c.put64(t, good.SessionsPA, files1) }, "is also session block"},
		{"two sessions share a file block", func(t *testing.T, c *damager) { c.put64(t, sess(1)+64, files0) }, "is also session 0"},
		{"file block links to the LUO blob", func(t *testing.T, c *damager) { c.put64(t, files0, blob) }, "is also LUO blob"},
		{"FLB page is a session block", func(t *testing.T, c *damager) { c.put64(t, blob+24, good.SessionsPA) }, "is also FLB page"},
		{"session name unterminated", func(t *testing.T, c *damager) {
			c.put(t, sess(0), []byte(strings.Repeat("0123456789abcdef", 4)))
		}, "name has no NUL in its 64 bytes"},
		{"duplicate session name", func(t *testing.T, c *damager) { c.put(t, sess(1), []byte("kho-sim-a")) }, "repeats the name of session 0 (EEXIST)"},
		{"session file count too large", func(t *testing.T, c *damager) { c.put64(t, sess(0)+72, 4) }, "3 files in its blocks, 4 in its entry"},
		{"files without a block", func(t *testing.T, c *damager) { c.put64(t, sess(1)+64, 0) }, "1 files but no file block"},
		{"file block count over the block", func(t *testing.T, c *damager) { c.put64(t, files0+8, luo.FilesPerBlock+1) }, "count 64, want 1 to 63"},
		{"duplicate token", func(t *testing.T, c *damager) { c.put64(t, file(0, 2)+56, 0x1001) }, "repeats token 0x1001"},
		{"file compatible unterminated", func(t *testing.T, c *damager) {
			c.put(t, file(1, 0), []byte(strings.Repeat("memfd-v2", 6)))
		}, "has no NUL in its 48 bytes"},
		{"FLB page misaligned", func(t *testing.T, c *damager) { c.put64(t, blob+24, good.FLBsPA+16) }, "FLB page"},
		{"FLB pgcnt 0", func(t *testing.T, c *damager) { c.put64(t, good.FLBsPA, 0) }, "pgcnt 0, want 1"},
		{"FLB count 64", func(t *testing.T, c *damager) { c.put64(t, good.FLBsPA+8, 64) }, "count 64 above LUO_FLB_MAX 63"},
		{"FLB count huge", func(t *testing.T, c *damager) { c.put64(t, good.FLBsPA+8, 1<<62) }, "above LUO_FLB_MAX 63"},
		{"FLB name of 48 characters", func(t *testing.T, c *damager) {
			c.put(t, flbEntry(1), []byte(strings.Repeat("liveupdate-test-", 3)))
		}, "has no NUL in its 48 bytes (strcmp runs past it)"},
		{"duplicate FLB name", func(t *testing.T, c *damager) { c.put(t, flbEntry(2), []byte("liveupdate-test-flb-v0")) }, "repeats the name"},
		{"FLB count 0", func(t *testing.T, c *damager) { c.put64(t, flbEntry(0)+56, 0) }, "count 0, but luo_flb_serialize"},
		{"metadata version 2", func(t *testing.T, c *damager) { c.put(t, metaPA, []byte{2}) }, "version 2 not supported"},
		{"metadata kexec_count 0", func(t *testing.T, c *damager) { c.put(t, metaPA+69, []byte{0, 0, 0, 0}) }, "kexec_count 0"},
		{"metadata release unterminated", func(t *testing.T, c *damager) {
			c.put(t, metaPA+4, []byte(strings.Repeat("7", kho.ReleaseLen)))
		}, "has no NUL"},
		{"FLB page not preserved", func(t *testing.T, c *damager) { c.setKey(t, kho.RadixKey(good.FLBsPA, 0), false) }, "FLB page"},
		{"root FDT not preserved", func(t *testing.T, c *damager) {
			c.setKey(t, kho.RadixKey(good.In.RootPA(), 0), false)
		}, "not in the preserved-memory map"},
		{"overlapping blocks", func(t *testing.T, c *damager) { c.setKey(t, kho.RadixKey(blob, 1), true) }, "overlap"},
		{"key without an order", func(t *testing.T, c *damager) { c.setKey(t, 1<<53|5, true) }, "encodes no order"},
		{"order beyond MAX_PAGE_ORDER", func(t *testing.T, c *damager) { c.setKey(t, 1<<(52-kho.MaxPageOrder-1), true) }, "encodes no order"},
		{"radix node twice", func(t *testing.T, c *damager) { c.put64(t, mapPA+511*8, nodes[1]) }, "reached twice"},
		{"radix root links to itself", func(t *testing.T, c *damager) { c.put64(t, mapPA+511*8, mapPA) }, "reached twice"},
		{"radix node misaligned", func(t *testing.T, c *damager) { c.put64(t, mapPA+511*8, 0x123) }, "not page aligned"},
		{"radix node beyond 52 bits", func(t *testing.T, c *damager) { c.put64(t, mapPA+511*8, 0xffff888000000000) }, "memory not available"},
		{"radix leaf missing", func(t *testing.T, c *damager) { c.s.Remove(nodes[len(nodes)-1]) }, "memory not available"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &damager{s: d.Pages.Clone(), h: good, next: 0x20000000}
			tt.damage(t, c)
			h, err := luo.Read(c.s, d.Setup.FDTAddr)
			if err == nil {
				t.Fatal("Read accepted the damage")
			}
			var all strings.Builder
			all.WriteString(err.Error())
			if h != nil {
				for _, f := range h.Findings {
					all.WriteString("\n" + f.String())
				}
			}
			if !strings.Contains(all.String(), tt.want) {
				t.Errorf("no %q in:\n%s", tt.want, all.String())
			}
			if _, err := luo.Read(d.Pages, d.Setup.FDTAddr); err != nil {
				t.Errorf("the damage leaked into the original: %v", err)
			}
		})
	}
}

// checkHandover checks the promises a handover Read accepts keeps.
func checkHandover(t *testing.T, h *luo.Handover) {
	t.Helper()
	for _, s := range h.Structures() {
		if !h.In.InOneBlock(s.PA, s.Size) || s.PA%physmem.PageSize != 0 {
			t.Fatalf("%s at %#x (%d bytes) not in one preserved block", s.What, s.PA, s.Size)
		}
	}
	if h.Sessions != nil {
		for _, s := range h.Sessions.Sessions {
			if uint64(len(s.Files)) != s.Count || len(s.Name) >= luo.SessionNameLen {
				t.Fatalf("session %+v", s)
			}
		}
	}
	if h.FLB != nil && len(h.FLB.Entries) > 63 {
		t.Fatalf("FLB table %+v overflows its page", h.FLB)
	}
}

// FuzzRead damages one page of the real handover at a time.
func FuzzRead(f *testing.F) {
	d, h := realHandover(f)
	addrs := d.Pages.Addresses()
	index := func(pa uint64) uint16 { i, _ := slices.BinarySearch(addrs, pa); return uint16(i) }
	mapPA, _ := h.In.Root().Root.U64(kho.PropMemoryMap)
	f.Add(index(mapPA), uint16(16), []byte{0xff})
	f.Add(index(h.SessionsPA), uint16(8), []byte{0x40})
	f.Add(index(h.FLBsPA), uint16(8), []byte{0x3f})
	f.Add(index(h.Sessions.Sessions[0].FilesPA), uint16(0), []byte{0, 0x80, 0x3d})
	f.Add(index(h.In.RootPA()), uint16(0x3c), []byte("kho"))
	f.Add(index(h.Ser.PA), uint16(16), []byte{0x10})
	f.Fuzz(func(t *testing.T, page, off uint16, data []byte) {
		s := d.Pages.Clone()
		p := s.Page(addrs[int(page)%len(addrs)])
		copy(p[int(off)%physmem.PageSize:], data)
		if h, err := luo.Read(s, d.Setup.FDTAddr); err == nil {
			checkHandover(t, h)
		}
	})
}

// FuzzReadFlat reads arbitrary bytes laid out as physical memory from
// 0x1000, with the root FDT at its start.
func FuzzReadFlat(f *testing.F) {
	d := realhandover.Load(f, realhandover.Handover)
	f.Add(d.Pages.Page(d.Setup.FDTAddr)[:300])
	f.Add([]byte{0xd0, 0x0d, 0xfe, 0xed})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64*physmem.PageSize {
			return
		}
		s := kho.NewPageStore()
		for off := 0; off < len(data); off += physmem.PageSize {
			s.Add(0x1000+uint64(off), data[off:min(off+physmem.PageSize, len(data))])
		}
		if h, err := luo.Read(s, 0x1000); err == nil {
			checkHandover(t, h)
		}
	})
}

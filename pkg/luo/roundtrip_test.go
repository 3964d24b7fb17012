package luo

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/kho-sim/kho-sim/pkg/fdt"
	"github.com/kho-sim/kho-sim/pkg/flb"
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"golang.org/x/sys/unix"
)

// luoTree parses the LUO FDT at fdtPA.
func luoTree(t testing.TB, mem *testMem, fdtPA uint64) *fdt.Tree {
	t.Helper()
	blob, err := mem.Map(fdtPA, FDTSize)
	if err != nil {
		t.Fatal(err)
	}
	tree, err := fdt.Parse(blob)
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

func mapProp(t testing.TB, mem *testMem, n *fdt.Node, prop string, size uint64) []byte {
	t.Helper()
	pa, err := n.U64(prop)
	if err != nil {
		t.Fatal(err)
	}
	b, err := mem.Map(pa, size)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func flbPage(t testing.TB, mem *testMem, fdtPA uint64) []byte {
	t.Helper()
	return mapProp(t, mem, luoTree(t, mem, fdtPA).Root.Child(FDTFLBNode), FDTFLBHeader, FLBPageSize)
}

func sessionBlock(t testing.TB, mem *testMem, fdtPA uint64) []byte {
	t.Helper()
	return mapProp(t, mem, luoTree(t, mem, fdtPA).Root.Child(FDTSessionNode), FDTSessionHeader, SessionBlockSize)
}

func TestSetupOutgoing_LUOFDT_KernelLayout(t *testing.T) {
	mem := newTestMem()
	c := New(mem, Options{})
	fdtPA, err := c.SetupOutgoing()
	if err != nil {
		t.Fatal(err)
	}
	// Allocation order: FDT page, session block, FLB page.
	if got, want := mem.sizes(), []int{FDTSize, FLBPageSize, SessionBlockSize}; !slices.Equal(got, want) {
		t.Fatalf("preserved blocks %v, want %v", got, want)
	}
	root := luoTree(t, mem, fdtPA).Root
	var props, children []string
	for _, p := range root.Props {
		props = append(props, p.Name)
	}
	for _, ch := range root.Children {
		children = append(children, ch.Name)
	}
	if !slices.Equal(props, []string{"compatible", FDTLiveupdateNum}) ||
		!slices.Equal(children, []string{FDTSessionNode, FDTFLBNode}) {
		t.Fatalf("root props %v children %v", props, children)
	}
	if s, _ := root.String("compatible"); s != FDTCompatible {
		t.Fatalf("root compatible %q", s)
	}
	if n, err := root.U64(FDTLiveupdateNum); err != nil || n != 1 {
		t.Fatalf("liveupdate-number %d, %v; want 1 on a cold boot", n, err)
	}
	for _, want := range []struct{ node, compat, prop string }{
		{FDTSessionNode, FDTSessionCompatible, FDTSessionHeader},
		{FDTFLBNode, FDTFLBCompatible, FDTFLBHeader},
	} {
		n := root.Child(want.node)
		var names []string
		for _, p := range n.Props {
			names = append(names, p.Name)
		}
		if s, _ := n.String("compatible"); s != want.compat || !slices.Equal(names, []string{"compatible", want.prop}) {
			t.Fatalf("node %s: compatible %q props %v", want.node, s, names)
		}
	}
	if pgcnt, count, _ := flb.ReadHeader(flbPage(t, mem, fdtPA)); pgcnt != 1 || count != 0 {
		t.Fatalf("FLB header %d/%d, want 1/0", pgcnt, count)
	}
	if _, err := c.SetupOutgoing(); !errors.Is(err, unix.EALREADY) {
		t.Fatalf("second SetupOutgoing = %v, want EALREADY", err)
	}
}

func TestSetupOutgoing_AllocationFails_DisablesLUO(t *testing.T) {
	mem := newTestMem()
	mem.failAlloc[2] = unix.ENOMEM // FDT page, session block, FLB page
	c := New(mem, Options{})
	if _, err := c.SetupOutgoing(); !errors.Is(err, unix.ENOMEM) {
		t.Fatalf("SetupOutgoing = %v, want ENOMEM", err)
	}
	if c.Enabled() {
		t.Fatal("LUO still enabled")
	}
	// As in 7.0 only the FDT page is freed: the session block leaks.
	if got := mem.sizes(); !slices.Equal(got, []int{SessionBlockSize}) {
		t.Fatalf("preserved blocks %v, want the leaked session block", got)
	}
	if err := c.RegisterFileHandler(newWorld().handler("memfd", false)); !errors.Is(err, unix.EOPNOTSUPP) {
		t.Fatalf("RegisterFileHandler = %v, want EOPNOTSUPP", err)
	}
}

func TestSetupOutgoing_Disabled_EOPNOTSUPP(t *testing.T) {
	c := New(newTestMem(), Options{FLB: flb.Options{Disabled: true}})
	if _, err := c.SetupOutgoing(); !errors.Is(err, unix.EOPNOTSUPP) {
		t.Fatalf("SetupOutgoing = %v, want EOPNOTSUPP", err)
	}
	if err := c.Serialize(); err != nil {
		t.Fatalf("Serialize on a disabled LUO = %v, want nil", err)
	}
}

// outgoingBoot runs boot 1: two sessions, memfd and vfio files, serialized.
func outgoingBoot(t testing.TB, w *world, mem *testMem) (fdtPA uint64) {
	t.Helper()
	bt := newBoot(t, w, mem, Options{})
	fdtPA, err := bt.c.SetupOutgoing()
	if err != nil {
		t.Fatal(err)
	}
	s1, _ := bt.c.CreateSession("vm-1")
	s2, _ := bt.c.CreateSession("vm-2")
	mustPreserve(t, s1, 10, memfd("f1"))
	mustPreserve(t, s1, 11, &testFile{kind: "vfio", name: "v1"})
	mustPreserve(t, s2, 20, memfd("f2"))
	handover(t, bt.c, mem, fdtPA)
	w.rec.Take()
	return fdtPA
}

func TestSerialize_WritesSessionsFilesAndFLBs(t *testing.T) {
	w := newWorld()
	mem := newTestMem()
	fdtPA := outgoingBoot(t, w, mem)
	block := sessionBlock(t, mem, fdtPA)
	if n := le.Uint64(block); n != 2 {
		t.Fatalf("session count %d, want 2", n)
	}
	e := sessionEntry(block, 0)
	if name := cstring(e[:SessionNameLen]); name != "vm-1" {
		t.Fatalf("session 0 name %q", name)
	}
	files, err := mem.Map(le.Uint64(e[64:]), FileBlockSize)
	if err != nil || le.Uint64(e[72:]) != 2 {
		t.Fatalf("session 0 files: %v, count %d", err, le.Uint64(e[72:]))
	}
	for i, want := range []struct {
		compat string
		name   string
		token  uint64
	}{{"memfd", "f1", 10}, {"vfio", "v1", 11}} {
		fe := files[i*FileEntrySize:]
		if cstring(fe[:48]) != want.compat || le.Uint64(fe[48:]) != fileData(want.name) || le.Uint64(fe[56:]) != want.token {
			t.Errorf("file %d: %q %#x %d", i, cstring(fe[:48]), le.Uint64(fe[48:]), le.Uint64(fe[56:]))
		}
	}
	page := flbPage(t, mem, fdtPA)
	for i, want := range []struct {
		name  string
		count uint64
	}{{"A", 2}, {"B", 3}} {
		ent, err := flb.ReadEntry(page, i)
		name, _ := ent.NameString()
		if err != nil || name != want.name || ent.Count != want.count || ent.Data != fileData(want.name) {
			t.Errorf("FLB %d: %q count %d data %#x (%v)", i, name, ent.Count, ent.Data, err)
		}
	}
}

// incomingBoot boots kernel 2 from boot 1's handover.
func incomingBoot(t testing.TB, w *world, mem *testMem, fdtPA uint64, opts Options) *boot {
	t.Helper()
	bt := newBoot(t, w, mem, opts)
	blob, err := mem.Map(fdtPA, FDTSize)
	if err != nil {
		t.Fatal(err)
	}
	if err := bt.c.SetupIncoming(blob); err != nil {
		t.Fatal(err)
	}
	return bt
}

func TestRoundTrip_RetrieveAndFinish(t *testing.T) {
	w := newWorld()
	mem := newTestMem()
	fdtPA := outgoingBoot(t, w, mem)
	bt := incomingBoot(t, w, mem, fdtPA, Options{})
	if in, out := bt.c.LiveupdateNumber(); in != 1 || out != 2 {
		t.Fatalf("liveupdate numbers %d/%d, want 1/2", in, out)
	}
	s1, err := bt.c.RetrieveSession("vm-1")
	if err != nil {
		t.Fatal(err)
	}
	if got := s1.Tokens(); !slices.Equal(got, []uint64{10, 11}) {
		t.Fatalf("tokens %v", got)
	}
	for range 2 {
		f, err := s1.RetrieveFile(10)
		if err != nil || f.(*testFile).name != "f1" {
			t.Fatalf("RetrieveFile = %v, %v", f, err)
		}
	}
	w.rec.Expect(t, "memfd retrieve f1")
	for _, f := range []*flb.FLB{bt.a, bt.b} {
		if _, err := bt.c.FLB().GetIncoming(f); err != nil {
			t.Fatal(err)
		}
	}
	w.rec.Expect(t, "flb retrieve A data-ok=true", "flb retrieve B data-ok=true")
	if err := s1.Finish(); err != nil {
		t.Fatal(err)
	}
	w.rec.Expect(t, "vfio finish ? retrieved=false", "memfd finish f1 retrieved=true")
	s2, _ := bt.c.RetrieveSession("vm-2")
	if err := s2.Finish(); err != nil {
		t.Fatal(err)
	}
	w.rec.Expect(t, "memfd finish ? retrieved=false", "flb finish B obj=in:B", "flb finish A obj=in:A")
	for _, s := range []*Session{s1, s2} {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := bt.c.RegisterFLB(bt.vfio, w.flb("C")); err != nil {
		t.Fatalf("after all sessions closed, registration works again: %v", err)
	}
	if len(bt.c.Warnings()) != 0 {
		t.Fatalf("warnings: %v", bt.c.Warnings())
	}

	// Boot 3 from boot 2: the number keeps counting.
	fdt2, err := bt.c.SetupOutgoing()
	if err != nil {
		t.Fatal(err)
	}
	handover(t, bt.c, mem, fdt2)
	bt3 := incomingBoot(t, w, mem, fdt2, Options{})
	if in, out := bt3.c.LiveupdateNumber(); in != 2 || out != 3 {
		t.Fatalf("boot 3 numbers %d/%d, want 2/3", in, out)
	}
}

func TestFinishBeforeRetrieve_7_0_FLBNeverFinishes(t *testing.T) {
	tests := []struct {
		name string
		fix  bool
		want []string
	}{
		{"7.0", false, []string{"memfd finish ? retrieved=false", "vfio finish ? retrieved=false", "memfd finish ? retrieved=false"}},
		{"fixed", true, []string{"memfd finish ? retrieved=false", "vfio finish ? retrieved=false", "memfd finish ? retrieved=false",
			"flb retrieve B data-ok=true", "flb finish B obj=in:B", "flb retrieve A data-ok=true", "flb finish A obj=in:A"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld()
			mem := newTestMem()
			fdtPA := outgoingBoot(t, w, mem)
			bt := incomingBoot(t, w, mem, fdtPA, Options{FLB: flb.Options{FixFinishBeforeRetrieve: tt.fix}})
			for _, name := range []string{"vm-2", "vm-1"} {
				s, err := bt.c.RetrieveSession(name)
				if err != nil {
					t.Fatal(err)
				}
				if err := s.Finish(); err != nil {
					t.Fatal(err)
				}
			}
			w.rec.Expect(t, tt.want...)
			if st := bt.b.State(); st.Finished != tt.fix {
				t.Fatalf("B finished=%v count=%d", st.Finished, st.IncomingCount)
			}
		})
	}
}

func TestFinish_CanFinishFalse_EBUSY_NothingFinished(t *testing.T) {
	w := newWorld()
	mem := newTestMem()
	fdtPA := outgoingBoot(t, w, mem)
	bt := incomingBoot(t, w, mem, fdtPA, Options{})
	s1, _ := bt.c.RetrieveSession("vm-1")
	w.fail.mu.Lock()
	w.fail.no["f1"] = true
	w.fail.mu.Unlock()
	if err := s1.Finish(); !errors.Is(err, unix.EBUSY) {
		t.Fatalf("Finish = %v, want EBUSY", err)
	}
	w.rec.Expect(t)
	if len(s1.Tokens()) != 2 {
		t.Fatal("files dropped by a refused finish")
	}
	// Close tries to finish too; the fd goes, the session stays and keeps
	// LUO from quiescing.
	if err := s1.Close(); !errors.Is(err, unix.EBUSY) {
		t.Fatalf("Close = %v, want EBUSY", err)
	}
	if _, in := bt.c.Sessions(); !slices.Contains(in, "vm-1") {
		t.Fatal("session gone after a failed close")
	}
	if err := bt.c.RegisterFLB(bt.vfio, w.flb("C")); !errors.Is(err, unix.EBUSY) {
		t.Fatalf("RegisterFLB = %v, want EBUSY", err)
	}
	if err := s1.Finish(); !errors.Is(err, unix.EBADF) {
		t.Fatalf("Finish after close = %v, want EBADF", err)
	}
}

func TestRetrieveFile_Errors(t *testing.T) {
	w := newWorld()
	mem := newTestMem()
	fdtPA := outgoingBoot(t, w, mem)
	bt := incomingBoot(t, w, mem, fdtPA, Options{})
	s1, _ := bt.c.RetrieveSession("vm-1")
	if _, err := s1.RetrieveFile(99); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("unknown token: %v, want ENOENT", err)
	}
	w.fail.set("retrieve f1", unix.EIO)
	if _, err := s1.RetrieveFile(10); !errors.Is(err, unix.EIO) {
		t.Fatalf("RetrieveFile = %v, want EIO", err)
	}
	w.fail.set("retrieve f1", nil)
	if _, err := s1.RetrieveFile(10); err != nil {
		t.Fatalf("retry: %v", err)
	}
	w.rec.Expect(t, "memfd retrieve f1", "memfd retrieve f1")
}

func TestRetrieveSession_Errors(t *testing.T) {
	w := newWorld()
	mem := newTestMem()
	fdtPA := outgoingBoot(t, w, mem)
	bt := incomingBoot(t, w, mem, fdtPA, Options{})
	if _, err := bt.c.RetrieveSession("nope"); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("unknown: %v, want ENOENT", err)
	}
	if _, err := bt.c.RetrieveSession("vm-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := bt.c.RetrieveSession("vm-1"); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("twice: %v, want EINVAL", err)
	}
	// Deserialized sessions block registration until retrieved and closed.
	if err := bt.c.RegisterFLB(bt.vfio, w.flb("C")); !errors.Is(err, unix.EBUSY) {
		t.Fatalf("RegisterFLB = %v, want EBUSY", err)
	}
	// Outgoing and incoming names are separate lists.
	if _, err := bt.c.CreateSession("vm-1"); err != nil {
		t.Fatalf("CreateSession of an incoming name: %v", err)
	}
}

func TestDeserialize_UnknownFileCompatible(t *testing.T) {
	tests := []struct {
		name      string
		propagate bool
	}{{"7.0 ignores it", false}, {"307e0c58 propagates it", true}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld()
			mem := newTestMem()
			fdtPA := outgoingBoot(t, w, mem)
			// Boot 2 has no vfio handler.
			c := New(mem, Options{PropagateFileDeserializeErrors: tt.propagate})
			if err := c.RegisterFileHandler(w.handler("memfd", true)); err != nil {
				t.Fatal(err)
			}
			blob, _ := mem.Map(fdtPA, FDTSize)
			if err := c.SetupIncoming(blob); err != nil {
				t.Fatal(err)
			}
			s, err := c.RetrieveSession("vm-1")
			if tt.propagate {
				if !errors.Is(err, unix.EIO) || !errors.Is(err, unix.ENOENT) {
					t.Fatalf("RetrieveSession = %v, want EIO wrapping ENOENT", err)
				}
				if err2 := c.Open(); !errors.Is(err2, unix.EIO) {
					t.Fatalf("second open = %v, want sticky EIO", err2)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Tokens(); !slices.Equal(got, []uint64{10}) {
				t.Fatalf("tokens %v, want [10] (files before the unknown one)", got)
			}
			if len(c.Warnings()) != 1 || !errors.Is(c.Warnings()[0], unix.ENOENT) {
				t.Fatalf("warnings %v", c.Warnings())
			}
			if err := s.Finish(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestDeserialize_DuplicateSessionNames_EEXIST_Sticky(t *testing.T) {
	w := newWorld()
	mem := newTestMem()
	fdtPA := outgoingBoot(t, w, mem)
	block := sessionBlock(t, mem, fdtPA)
	copy(sessionEntry(block, 1)[:SessionNameLen], "vm-1\x00")
	bt := incomingBoot(t, w, mem, fdtPA, Options{})
	for range 2 {
		if err := bt.c.Open(); !errors.Is(err, unix.EIO) || !errors.Is(err, unix.EEXIST) {
			t.Fatalf("Open = %v, want EIO wrapping EEXIST", err)
		}
	}
	if _, in := bt.c.Sessions(); !slices.Equal(in, []string{"vm-1"}) {
		t.Fatalf("incoming sessions %v, want the first kept, as in 7.0", in)
	}
}

func TestDeserialize_CorruptCounts_BootError(t *testing.T) {
	tests := []struct {
		name    string
		corrupt func(block []byte)
		action  kernel.Action
	}{
		{"session count above 819", func(b []byte) { le.PutUint64(b, SessionMax+1) }, kernel.ReadsPastBlock},
		{"file count above 128", func(b []byte) { le.PutUint64(sessionEntry(b, 0)[72:], FileMax+1) }, kernel.ReadsPastBlock},
		{"file block not preserved", func(b []byte) { le.PutUint64(sessionEntry(b, 0)[64:], 0xdead000) }, kernel.ReadsUnpreserved},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld()
			mem := newTestMem()
			fdtPA := outgoingBoot(t, w, mem)
			tt.corrupt(sessionBlock(t, mem, fdtPA))
			bt := incomingBoot(t, w, mem, fdtPA, Options{})
			err := bt.c.Open()
			var be *BootError
			if !errors.As(err, &be) || be.KernelAction != tt.action {
				t.Fatalf("Open = %v, want BootError %q", err, tt.action)
			}
		})
	}
}

func TestDeserialize_SessionNameWithoutNUL_Truncated(t *testing.T) {
	w := newWorld()
	mem := newTestMem()
	fdtPA := outgoingBoot(t, w, mem)
	block := sessionBlock(t, mem, fdtPA)
	for i := range SessionNameLen {
		sessionEntry(block, 0)[i] = 'q'
	}
	bt := incomingBoot(t, w, mem, fdtPA, Options{})
	if err := bt.c.Open(); err != nil {
		t.Fatal(err)
	}
	_, in := bt.c.Sessions()
	if len(in) != 2 || len(in[0]) != SessionNameLen-1 {
		t.Fatalf("incoming %q, want a 63-byte first name", in)
	}
}

func TestGetIncoming_FLBNotHandedOver_ENOENT(t *testing.T) {
	w := newWorld()
	mem := newTestMem()
	fdtPA := outgoingBoot(t, w, mem)
	bt := incomingBoot(t, w, mem, fdtPA, Options{})
	// Before /dev/liveupdate is opened no session exists: registering works.
	extra := w.flb("C")
	if err := bt.c.RegisterFLB(bt.vfio, extra); err != nil {
		t.Fatal(err)
	}
	if _, err := bt.c.FLB().GetIncoming(extra); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("GetIncoming = %v, want ENOENT", err)
	}
}

func ExampleCore() {
	mem := newTestMem()
	c := New(mem, Options{})
	fdtPA, _ := c.SetupOutgoing()
	_ = c.Serialize()
	next := New(mem, Options{})
	blob, _ := mem.Map(fdtPA, FDTSize)
	fmt.Println(next.SetupIncoming(blob))
	fmt.Println(next.LiveupdateNumber())
	// Output:
	// <nil>
	// 1 2
}

package luo

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/pkg/flb"
	"github.com/kho-sim/kho-sim/pkg/kernel"
)

var formats = []kernel.Generation{kernel.V70, kernel.LUOv2, kernel.V72}

// luoBlob returns the bytes KHO would publish as the "LUO" child.
func luoBlob(t testing.TB, mem *testMem, f kernel.Generation, pa uint64) []byte {
	t.Helper()
	size := uint64(FDTSize)
	if f == kernel.V72 {
		size = SerSize
	}
	b, err := mem.Map(pa, size)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// serOf reads struct luo_ser of a luo-v2 or luo-v5 handover.
func serOf(t testing.TB, mem *testMem, f kernel.Generation, pa uint64) Ser {
	t.Helper()
	raw := luoBlob(t, mem, f, pa)
	if f == kernel.LUOv2 {
		serPA, err := luoTree(t, mem, pa).Root.U64(FDTABIHeader)
		if err != nil {
			t.Fatal(err)
		}
		if raw, err = mem.Map(serPA, SerV2Size); err != nil {
			t.Fatal(err)
		}
	}
	s, err := ParseSer(f, raw)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// genOutgoing is outgoingBoot for any format.
func genOutgoing(t testing.TB, w *world, mem *testMem, f kernel.Generation) uint64 {
	t.Helper()
	bt := newBoot(t, w, mem, Options{Generation: f})
	pa, err := bt.c.SetupOutgoing()
	if err != nil {
		t.Fatal(err)
	}
	s1, _ := bt.c.CreateSession("vm-1")
	s2, _ := bt.c.CreateSession("vm-2")
	mustPreserve(t, s1, 10, memfd("f1"))
	mustPreserve(t, s1, 11, &testFile{kind: "vfio", name: "v1"})
	mustPreserve(t, s2, 20, memfd("f2"))
	if err := bt.c.Serialize(); err != nil {
		t.Fatal(err)
	}
	w.rec.Take()
	return pa
}

func genIncoming(t testing.TB, w *world, mem *testMem, f kernel.Generation, pa uint64) *boot {
	t.Helper()
	bt := newBoot(t, w, mem, Options{Generation: f})
	if err := bt.c.SetupIncoming(luoBlob(t, mem, f, pa)); err != nil {
		t.Fatal(err)
	}
	return bt
}

// TestGenerations_RoundTrip runs the same two-session handover through
// every format, then a third boot, and checks what the second one sees.
func TestGenerations_RoundTrip(t *testing.T) {
	for _, f := range formats {
		t.Run(string(f), func(t *testing.T) {
			w := newWorld()
			mem := newTestMem()
			pa := genOutgoing(t, w, mem, f)
			bt := genIncoming(t, w, mem, f, pa)
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
			if f, err := s1.RetrieveFile(10); err != nil || f.(*testFile).name != "f1" {
				t.Fatalf("RetrieveFile = %v, %v", f, err)
			}
			for _, fl := range []*flb.FLB{bt.a, bt.b} {
				if _, err := bt.c.FLB().GetIncoming(fl); err != nil {
					t.Fatal(err)
				}
			}
			if err := s1.Finish(); err != nil {
				t.Fatal(err)
			}
			s2, _ := bt.c.RetrieveSession("vm-2")
			if err := s2.Finish(); err != nil {
				t.Fatal(err)
			}
			w.rec.Expect(t, "memfd retrieve f1", "flb retrieve A data-ok=true", "flb retrieve B data-ok=true",
				"vfio finish ? retrieved=false", "memfd finish f1 retrieved=true",
				"memfd finish ? retrieved=false", "flb finish B obj=in:B", "flb finish A obj=in:A")
			if len(bt.c.Warnings()) != 0 {
				t.Fatalf("warnings: %v", bt.c.Warnings())
			}
			pa2, err := bt.c.SetupOutgoing()
			if err != nil {
				t.Fatal(err)
			}
			if err := bt.c.Serialize(); err != nil {
				t.Fatal(err)
			}
			bt3 := genIncoming(t, w, mem, f, pa2)
			if in, out := bt3.c.LiveupdateNumber(); in != 2 || out != 3 {
				t.Fatalf("boot 3 numbers %d/%d, want 2/3", in, out)
			}
			if _, in := bt3.c.Sessions(); len(in) != 0 {
				t.Fatalf("boot 3 sessions %v, want none", in)
			}
		})
	}
}

func TestSetupOutgoing_V2_Layout(t *testing.T) {
	mem := newTestMem()
	c := New(mem, Options{Generation: kernel.LUOv2})
	pa, err := c.SetupOutgoing()
	if err != nil {
		t.Fatal(err)
	}
	// FDT page, luo_ser, session block, FLB page: sizes as allocated.
	if got, want := mem.sizes(), []int{SerV2Size, FDTSize, FLBPageSize, SessionBlockSize}; !slices.Equal(got, want) {
		t.Fatalf("preserved blocks %v, want %v", got, want)
	}
	root := luoTree(t, mem, pa).Root
	var props []string
	for _, p := range root.Props {
		props = append(props, p.Name)
	}
	if s, _ := root.String("compatible"); s != FDTCompatibleV2 || !slices.Equal(props, []string{"compatible", FDTABIHeader}) || len(root.Children) != 0 {
		t.Fatalf("LUO FDT %q props %v children %d", s, props, len(root.Children))
	}
	ser := serOf(t, mem, kernel.LUOv2, pa)
	if ser.LiveupdateNum != 1 || ser.SessionsPA == 0 || ser.FLBsPA == 0 {
		t.Fatalf("luo_ser %+v", ser)
	}
	if _, err := mem.Map(ser.SessionsPA, SessionBlockSize); err != nil {
		t.Fatalf("sessions_pa is not the 16-page block: %v", err)
	}
	if pgcnt, _, _ := flb.ReadHeader(luoBlobAt(t, mem, ser.FLBsPA, FLBPageSize)); pgcnt != 1 {
		t.Fatalf("FLB page pgcnt %d", pgcnt)
	}
}

func luoBlobAt(t testing.TB, mem *testMem, pa, size uint64) []byte {
	t.Helper()
	b, err := mem.Map(pa, size)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSetupOutgoing_V5_Layout: struct luo_ser is the blob; sessions_pa is
// written only by reboot, and only if a session exists.
func TestSetupOutgoing_V5_Layout(t *testing.T) {
	mem := newTestMem()
	w := newWorld()
	bt := newBoot(t, w, mem, Options{Generation: kernel.V72})
	pa, err := bt.c.SetupOutgoing()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := mem.sizes(), []int{SerSize, FLBPageSize}; !slices.Equal(got, want) {
		t.Fatalf("preserved blocks %v, want %v", got, want)
	}
	raw := luoBlob(t, mem, kernel.V72, pa)
	if string(raw[:8]) != "luo-v5\x00\x00" {
		t.Fatalf("compatible bytes %q", raw[:8])
	}
	ser := serOf(t, mem, kernel.V72, pa)
	if ser.Compatible != SerCompatible || ser.LiveupdateNum != 1 || ser.SessionsPA != 0 || ser.FLBsPA == 0 {
		t.Fatalf("luo_ser %+v", ser)
	}
	s, _ := bt.c.CreateSession("vm-1")
	if ser := serOf(t, mem, kernel.V72, pa); ser.SessionsPA != 0 {
		t.Fatal("sessions_pa set before reboot")
	}
	if err := bt.c.Serialize(); err != nil {
		t.Fatal(err)
	}
	if ser := serOf(t, mem, kernel.V72, pa); ser.SessionsPA == 0 {
		t.Fatal("sessions_pa not set by reboot")
	}
	// A failed reboot would be retried; with no session it is 0 again.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := bt.c.Serialize(); err != nil {
		t.Fatal(err)
	}
	if ser := serOf(t, mem, kernel.V72, pa); ser.SessionsPA != 0 {
		t.Fatalf("sessions_pa %#x with no session", ser.SessionsPA)
	}
}

// TestV5_BlocksGrowAndShrink: 60 sessions take two linked blocks (51 + 9)
// and a session with 70 files two file blocks (63 + 7); both are read back
// and closing sessions frees their blocks.
func TestV5_BlocksGrowAndShrink(t *testing.T) {
	w := newWorld()
	mem := newTestMem()
	bt := newBoot(t, w, mem, Options{Generation: kernel.V72})
	pa, err := bt.c.SetupOutgoing()
	if err != nil {
		t.Fatal(err)
	}
	base := len(mem.sizes())
	var sessions []*Session
	for i := range 60 {
		s, err := bt.c.CreateSession(fmt.Sprintf("s%02d", i))
		if err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, s)
	}
	if n := len(mem.sizes()) - base; n != 2 {
		t.Fatalf("%d session blocks for 60 sessions, want 2", n)
	}
	for tok := range uint64(70) {
		mustPreserve(t, sessions[0], tok, memfd(fmt.Sprintf("f%d", tok)))
	}
	if n := len(mem.sizes()) - base; n != 4 {
		t.Fatalf("%d blocks for 60 sessions and 70 files, want 4", n)
	}
	if err := bt.c.Serialize(); err != nil {
		t.Fatal(err)
	}
	ser := serOf(t, mem, kernel.V72, pa)
	first := luoBlobAt(t, mem, ser.SessionsPA, BlockSize)
	next := le.Uint64(first)
	second := luoBlobAt(t, mem, next, BlockSize)
	if le.Uint64(first[8:]) != SessionsPerBlock || le.Uint64(second) != 0 || le.Uint64(second[8:]) != 9 {
		t.Fatalf("session blocks: count %d next %#x, then count %d next %#x", le.Uint64(first[8:]), next, le.Uint64(second[8:]), le.Uint64(second))
	}
	e := first[BlockHeaderSize:][:SessionEntrySize]
	files := luoBlobAt(t, mem, le.Uint64(e[64:]), BlockSize)
	if cstring(e[:SessionNameLen]) != "s00" || le.Uint64(e[72:]) != 70 || le.Uint64(files[8:]) != FilesPerBlock {
		t.Fatalf("session 0: %q, %d files, first file block count %d", cstring(e[:SessionNameLen]), le.Uint64(e[72:]), le.Uint64(files[8:]))
	}

	in := genIncoming(t, w, mem, kernel.V72, pa)
	if err := in.c.Open(); err != nil {
		t.Fatal(err)
	}
	_, names := in.c.Sessions()
	if len(names) != 60 || names[59] != "s59" {
		t.Fatalf("%d incoming sessions, last %q", len(names), names[len(names)-1])
	}
	s0, _ := in.c.RetrieveSession("s00")
	if toks := s0.Tokens(); len(toks) != 70 || toks[69] != 69 {
		t.Fatalf("%d tokens", len(toks))
	}

	// Closing every outgoing session gives all their blocks back.
	for _, s := range sessions {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(mem.sizes()) - base; n != 0 {
		t.Fatalf("%d blocks left after closing every session", n)
	}
}

// TestV5_NoSevenZeroLimits: 7.2 takes more than 819 sessions and more than
// 128 files; only the block count bounds it.
func TestV5_NoSevenZeroLimits(t *testing.T) {
	w := newWorld()
	mem := newTestMem()
	bt := newBoot(t, w, mem, Options{Generation: kernel.V72})
	if _, err := bt.c.SetupOutgoing(); err != nil {
		t.Fatal(err)
	}
	for i := range SessionMax + 1 {
		if _, err := bt.c.CreateSession(fmt.Sprintf("s%d", i)); err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
	}
	out, _ := bt.c.Sessions()
	s0 := bt.c.outgoing.sessions[0]
	for tok := range uint64(FileMax + 1) {
		mustPreserve(t, s0, tok, memfd(fmt.Sprintf("f%d", tok)))
	}
	if len(out) != SessionMax+1 || len(s0.Tokens()) != FileMax+1 {
		t.Fatalf("%d sessions, %d files", len(out), len(s0.Tokens()))
	}
	full := newBlockSet(FileEntrySize)
	full.blocks = make([]setBlock, MaxBlocks)
	if err := full.grow(mem, MaxBlocks*full.perBlock+1); !errors.Is(err, unix.ENOSPC) || len(full.blocks) != MaxBlocks {
		t.Fatalf("grow past KHO_MAX_BLOCKS: %v, %d blocks", err, len(full.blocks))
	}
}

// TestV5_DuplicateNameLeavesEmptyBlock reproduces a 7.2 flaw: with 51
// sessions, creating a duplicate name grows the block set first and fails
// with EEXIST without shrinking it; reboot hands over a chain whose second
// block has count 0, which kho_block_set_restore refuses, and the next
// kernel panics.
func TestV5_DuplicateNameLeavesEmptyBlock(t *testing.T) {
	w := newWorld()
	mem := newTestMem()
	bt := newBoot(t, w, mem, Options{Generation: kernel.V72})
	pa, err := bt.c.SetupOutgoing()
	if err != nil {
		t.Fatal(err)
	}
	for i := range SessionsPerBlock {
		if _, err := bt.c.CreateSession(fmt.Sprintf("s%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := bt.c.CreateSession("s0"); !errors.Is(err, unix.EEXIST) {
		t.Fatalf("duplicate: %v, want EEXIST", err)
	}
	if n := len(bt.c.outgoing.blocks.blocks); n != 2 {
		t.Fatalf("%d session blocks, want 2 (the leaked one)", n)
	}
	if err := bt.c.Serialize(); err != nil {
		t.Fatal(err)
	}
	next := New(mem, Options{Generation: kernel.V72})
	err = next.SetupIncoming(luoBlob(t, mem, kernel.V72, pa))
	var be *BootError
	if !errors.As(err, &be) || be.KernelAction != kernel.PanicsAtBoot || !errors.Is(err, unix.EINVAL) {
		t.Fatalf("SetupIncoming = %v, want a panic (EINVAL)", err)
	}
}

// TestSetupIncoming_OtherGeneration_Panics: each kernel refuses the LUO
// child of another generation as its own code would, never by crashing.
func TestSetupIncoming_OtherGeneration_Panics(t *testing.T) {
	for _, writer := range formats {
		w := newWorld()
		mem := newTestMem()
		pa := genOutgoing(t, w, mem, writer)
		blob := luoBlob(t, mem, writer, pa)
		for _, reader := range formats {
			if reader == writer {
				continue
			}
			t.Run(fmt.Sprintf("%s read by %s", writer, reader), func(t *testing.T) {
				c := New(mem, Options{Generation: reader})
				err := c.SetupIncoming(blob)
				var be *BootError
				if !errors.As(err, &be) || be.KernelAction != kernel.PanicsAtBoot || !errors.Is(err, unix.EINVAL) {
					t.Fatalf("SetupIncoming = %v, want a panic (EINVAL)", err)
				}
				if c.Enabled() {
					t.Fatal("LUO still enabled")
				}
			})
		}
	}
}

func TestSetupIncoming_V5_Corruption(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, mem *testMem, ser []byte) []byte // returns the blob to pass
		action kernel.Action
		open   error // when SetupIncoming succeeds: Open's error
	}{
		{"blob too small", func(t *testing.T, mem *testMem, ser []byte) []byte { return ser[:SerSize-1] }, kernel.PanicsAtBoot, nil},
		{"compatible luo-v4", func(t *testing.T, mem *testMem, ser []byte) []byte { ser[5] = '4'; return ser }, kernel.PanicsAtBoot, nil},
		{"compatible without NUL", func(t *testing.T, mem *testMem, ser []byte) []byte { copy(ser, "luo-v5xx"); return ser }, kernel.PanicsAtBoot, nil},
		{"session chain loops", func(t *testing.T, mem *testMem, ser []byte) []byte {
			head := le.Uint64(ser[16:])
			le.PutUint64(luoBlobAt(t, mem, head, BlockSize), head)
			return ser
		}, kernel.PanicsAtBoot, nil},
		{"session block count 0", func(t *testing.T, mem *testMem, ser []byte) []byte {
			le.PutUint64(luoBlobAt(t, mem, le.Uint64(ser[16:]), BlockSize)[8:], 0)
			return ser
		}, kernel.PanicsAtBoot, nil},
		{"session block count 52", func(t *testing.T, mem *testMem, ser []byte) []byte {
			le.PutUint64(luoBlobAt(t, mem, le.Uint64(ser[16:]), BlockSize)[8:], SessionsPerBlock+1)
			return ser
		}, kernel.PanicsAtBoot, nil},
		{"session block unpreserved", func(t *testing.T, mem *testMem, ser []byte) []byte {
			le.PutUint64(ser[16:], 0xdead000)
			return ser
		}, kernel.ReadsUnpreserved, nil},
		{"FLB page unpreserved", func(t *testing.T, mem *testMem, ser []byte) []byte {
			le.PutUint64(ser[24:], 0xdead000)
			return ser
		}, kernel.ReadsUnpreserved, nil},
		{"file count mismatch", func(t *testing.T, mem *testMem, ser []byte) []byte {
			e := luoBlobAt(t, mem, le.Uint64(ser[16:]), BlockSize)[BlockHeaderSize:]
			le.PutUint64(e[72:], 3)
			return ser
		}, kernel.NoAction, unix.EINVAL},
		{"file chain loops", func(t *testing.T, mem *testMem, ser []byte) []byte {
			e := luoBlobAt(t, mem, le.Uint64(ser[16:]), BlockSize)[BlockHeaderSize:]
			files := le.Uint64(e[64:])
			le.PutUint64(luoBlobAt(t, mem, files, BlockSize), files)
			return ser
		}, kernel.NoAction, unix.EINVAL},
		{"file block count 64", func(t *testing.T, mem *testMem, ser []byte) []byte {
			e := luoBlobAt(t, mem, le.Uint64(ser[16:]), BlockSize)[BlockHeaderSize:]
			le.PutUint64(luoBlobAt(t, mem, le.Uint64(e[64:]), BlockSize)[8:], FilesPerBlock+1)
			return ser
		}, kernel.NoAction, unix.EINVAL},
		{"file block unpreserved", func(t *testing.T, mem *testMem, ser []byte) []byte {
			e := luoBlobAt(t, mem, le.Uint64(ser[16:]), BlockSize)[BlockHeaderSize:]
			le.PutUint64(e[64:], 0xdead000)
			return ser
		}, kernel.ReadsUnpreserved, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld()
			mem := newTestMem()
			pa := genOutgoing(t, w, mem, kernel.V72)
			blob := tt.damage(t, mem, luoBlob(t, mem, kernel.V72, pa))
			c := newBoot(t, w, mem, Options{Generation: kernel.V72}).c
			err := c.SetupIncoming(blob)
			if tt.open != nil {
				if err != nil {
					t.Fatal(err)
				}
				err = c.Open()
				if !errors.Is(err, unix.EIO) || !errors.Is(err, tt.open) {
					t.Fatalf("Open = %v, want EIO wrapping %v", err, tt.open)
				}
				return
			}
			if tt.action == kernel.ReadsUnpreserved && err == nil {
				err = c.Open()
			}
			var be *BootError
			if !errors.As(err, &be) || be.KernelAction != tt.action {
				t.Fatalf("got %v, want BootError %q", err, tt.action)
			}
		})
	}
}

// TestV5_RandomDamageNeverPanics flips bytes in luo_ser and the session and
// file blocks and runs a whole incoming boot on the result.
func TestV5_RandomDamageNeverPanics(t *testing.T) {
	w := newWorld()
	mem := newTestMem()
	pa := genOutgoing(t, w, mem, kernel.V72)
	saved := map[uint64][]byte{}
	for start, b := range mem.blocks {
		saved[start] = slices.Clone(b)
	}
	starts := slices.Sorted(maps.Keys(saved))
	rng := rand.New(rand.NewPCG(3, 4))
	rejected := 0
	for range 300 {
		for s, b := range saved {
			copy(mem.blocks[s], b)
		}
		for range 1 + rng.IntN(3) {
			b := mem.blocks[starts[rng.IntN(len(starts))]]
			b[rng.IntN(min(len(b), 256))] ^= byte(1 << rng.IntN(8))
		}
		bt := newBoot(t, w, mem, Options{Generation: kernel.V72})
		if bt.c.SetupIncoming(luoBlob(t, mem, kernel.V72, pa)) != nil {
			rejected++
			continue
		}
		_ = bt.c.Open()
		_, in := bt.c.Sessions()
		for _, name := range in {
			if s, err := bt.c.RetrieveSession(name); err == nil {
				for _, tok := range s.Tokens() {
					_, _ = s.RetrieveFile(tok)
				}
				_ = s.Finish()
			}
		}
		w.rec.Take()
	}
	// Both outcomes must occur, or the damage missed what it is meant to hit.
	if rejected == 0 || rejected == 300 {
		t.Fatalf("%d of 300 damaged handovers rejected at setup, want some but not all", rejected)
	}
}

func TestParseSer(t *testing.T) {
	raw := make([]byte, SerSize)
	copy(raw, "luo-v5")
	le.PutUint64(raw[8:], 7)
	le.PutUint64(raw[16:], 0x1000)
	le.PutUint64(raw[24:], 0x2000)
	if s, err := ParseSer(kernel.V72, raw); err != nil || s != (Ser{SerCompatible, 7, 0x1000, 0x2000}) {
		t.Fatalf("v5: %+v, %v", s, err)
	}
	if s, err := ParseSer(kernel.LUOv2, raw[8:]); err != nil || s != (Ser{"", 7, 0x1000, 0x2000}) {
		t.Fatalf("v2: %+v, %v", s, err)
	}
	if _, err := ParseSer(kernel.V72, raw[:31]); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("short: %v", err)
	}
}

// TestReadGeneration_CrossesGenerations: a Core can read one generation and
// write another, to model a hop between kernel generations.
func TestReadGeneration_CrossesGenerations(t *testing.T) {
	w := newWorld()
	mem := newTestMem()
	pa := genOutgoing(t, w, mem, kernel.V72)
	bt := newBoot(t, w, mem, Options{Generation: kernel.V70, ReadGeneration: kernel.V72})
	if bt.c.Generation() != kernel.V70 || bt.c.ReadGeneration() != kernel.V72 {
		t.Fatalf("formats %s/%s", bt.c.Generation(), bt.c.ReadGeneration())
	}
	if err := bt.c.SetupIncoming(luoBlob(t, mem, kernel.V72, pa)); err != nil {
		t.Fatal(err)
	}
	s, err := bt.c.RetrieveSession("vm-1")
	if err != nil || len(s.Tokens()) != 2 {
		t.Fatalf("RetrieveSession: %v", err)
	}
	fdtPA, err := bt.c.SetupOutgoing()
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := luoTree(t, mem, fdtPA).Root.String("compatible"); c != FDTCompatible {
		t.Fatalf("writes %q, want %q", c, FDTCompatible)
	}
	other := New(mem, Options{Generation: kernel.V72, ReadGeneration: kernel.V70})
	var be *BootError
	if err := other.SetupIncoming(luoBlob(t, mem, kernel.V72, pa)); !errors.As(err, &be) || be.KernelAction != kernel.PanicsAtBoot {
		t.Fatalf("a luo-v1 reader given luo-v5: %v, want a panic", err)
	}
}

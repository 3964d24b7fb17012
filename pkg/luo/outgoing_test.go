package luo

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/kho-sim/kho-sim/pkg/flb"
	"golang.org/x/sys/unix"
)

func TestRegisterFileHandler_Errors(t *testing.T) {
	w := newWorld()
	going := &flb.Module{Name: "gone"}
	going.BeginUnload()
	tests := []struct {
		name  string
		opts  Options
		setup func(c *Core) // runs before the registration under test
		h     func() *FileHandler
		want  unix.Errno
	}{
		{"disabled EOPNOTSUPP", Options{FLB: flb.Options{Disabled: true}}, nil,
			func() *FileHandler { return w.handler("memfd", false) }, unix.EOPNOTSUPP},
		{"missing can_preserve EINVAL", Options{}, nil, func() *FileHandler {
			h := w.handler("memfd", false)
			h.Ops.CanPreserve = nil
			return h
		}, unix.EINVAL},
		{"missing finish EINVAL", Options{}, nil, func() *FileHandler {
			h := w.handler("memfd", false)
			h.Ops.Finish = nil
			return h
		}, unix.EINVAL},
		{"compatible over 48 bytes EINVAL", Options{}, nil,
			func() *FileHandler { return w.handler(strings.Repeat("x", 49), false) }, unix.EINVAL},
		{"duplicate compatible EEXIST", Options{}, func(c *Core) {
			if err := c.RegisterFileHandler(w.handler("memfd", false)); err != nil {
				t.Fatal(err)
			}
		}, func() *FileHandler { return w.handler("memfd", false) }, unix.EEXIST},
		{"owner going EAGAIN", Options{}, nil, func() *FileHandler {
			h := w.handler("memfd", false)
			h.Ops.Owner = going
			return h
		}, unix.EAGAIN},
		{"session exists EBUSY", Options{}, func(c *Core) {
			if _, err := c.CreateSession("s"); err != nil {
				t.Fatal(err)
			}
		}, func() *FileHandler { return w.handler("memfd", false) }, unix.EBUSY},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New(newTestMem(), tt.opts)
			if tt.setup != nil {
				tt.setup(c)
			}
			if err := c.RegisterFileHandler(tt.h()); !errors.Is(err, tt.want) {
				t.Fatalf("RegisterFileHandler = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestUnregisterFileHandler_FLBsOrSessions_EBUSY(t *testing.T) {
	w := newWorld()
	bt := newBoot(t, w, newTestMem(), Options{})
	if err := bt.c.UnregisterFileHandler(bt.vfio); !errors.Is(err, unix.EBUSY) {
		t.Fatalf("with an FLB: %v, want EBUSY", err)
	}
	if err := bt.c.UnregisterFLB(bt.vfio, bt.b); err != nil {
		t.Fatal(err)
	}
	s, err := bt.c.CreateSession("s")
	if err != nil {
		t.Fatal(err)
	}
	if err := bt.c.UnregisterFileHandler(bt.vfio); !errors.Is(err, unix.EBUSY) {
		t.Fatalf("with a session: %v, want EBUSY", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := bt.c.UnregisterFileHandler(bt.vfio); err != nil {
		t.Fatal(err)
	}
	if err := bt.c.RegisterFLB(bt.vfio, bt.b); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("RegisterFLB on an unregistered handler = %v, want EINVAL", err)
	}
}

func TestQuiesce_AnyOutgoingSession_RegisterFLB_EBUSY(t *testing.T) {
	w := newWorld()
	bt := newBoot(t, w, newTestMem(), Options{})
	s, err := bt.c.CreateSession("s")
	if err != nil {
		t.Fatal(err)
	}
	extra := w.flb("C")
	if err := bt.c.RegisterFLB(bt.memfd, extra); !errors.Is(err, unix.EBUSY) {
		t.Fatalf("RegisterFLB = %v, want EBUSY", err)
	}
	if err := bt.c.UnregisterFLB(bt.memfd, bt.a); !errors.Is(err, unix.EBUSY) {
		t.Fatalf("UnregisterFLB = %v, want EBUSY", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := bt.c.RegisterFLB(bt.memfd, extra); err != nil {
		t.Fatalf("after close: %v", err)
	}
}

func TestCreateSession_NameRules(t *testing.T) {
	c := New(newTestMem(), Options{})
	long := strings.Repeat("n", 70)
	s, err := c.CreateSession(long)
	if err != nil {
		t.Fatal(err)
	}
	if s.Name() != long[:SessionNameLen-1] {
		t.Fatalf("name %q, want truncated to 63 bytes", s.Name())
	}
	if _, err := c.CreateSession(long[:SessionNameLen-1] + "different tail"); !errors.Is(err, unix.EEXIST) {
		t.Fatalf("same 63-byte prefix: %v, want EEXIST", err)
	}
	if _, err := c.CreateSession("a\x00b"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSession("a"); !errors.Is(err, unix.EEXIST) {
		t.Fatalf("name cut at NUL: %v, want EEXIST", err)
	}
	if _, err := c.CreateSession(""); err != nil {
		t.Fatalf("empty name: %v (7.0 accepts it)", err)
	}
}

func TestCreateSession_820th_ENOMEM(t *testing.T) {
	c := New(newTestMem(), Options{})
	for i := range SessionMax {
		if _, err := c.CreateSession(fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.CreateSession("one more"); !errors.Is(err, unix.ENOMEM) {
		t.Fatalf("CreateSession = %v, want ENOMEM", err)
	}
}

func TestCreateSession_Disabled_NoDevice(t *testing.T) {
	c := New(newTestMem(), Options{FLB: flb.Options{Disabled: true}})
	if _, err := c.CreateSession("s"); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("CreateSession = %v, want ENOENT (no /dev/liveupdate)", err)
	}
}

func TestPreserveFile_FLBPreserveBeforeHandlerPreserve(t *testing.T) {
	w := newWorld()
	bt := newBoot(t, w, newTestMem(), Options{})
	s, _ := bt.c.CreateSession("s")
	mustPreserve(t, s, 1, memfd("f1"))
	w.rec.Expect(t, "flb preserve A", "flb preserve B", "memfd preserve f1")
	mustPreserve(t, s, 2, memfd("f2"))
	w.rec.Expect(t, "memfd preserve f2")
	mustPreserve(t, s, 3, &testFile{kind: "vfio", name: "v1"})
	w.rec.Expect(t, "vfio preserve v1") // B is already preserved by memfd files
	if st := bt.b.State(); st.OutgoingCount != 3 {
		t.Fatalf("B count %d, want 3", st.OutgoingCount)
	}
}

func TestPreserveFile_HandlerPreserveFails_FLBsUnpreservedInReverse(t *testing.T) {
	w := newWorld()
	mem := newTestMem()
	bt := newBoot(t, w, mem, Options{})
	s, _ := bt.c.CreateSession("s")
	before := mem.sizes()
	w.fail.set("preserve f1", unix.EIO)
	if err := s.PreserveFile(1, memfd("f1")); !errors.Is(err, unix.EIO) {
		t.Fatalf("PreserveFile = %v, want EIO", err)
	}
	w.rec.Expect(t, "flb preserve A", "flb preserve B", "memfd preserve f1", "flb unpreserve B", "flb unpreserve A")
	if got := mem.sizes(); !slices.Equal(got, before) {
		t.Fatalf("preserved blocks %v, want %v (file block freed)", got, before)
	}
}

func TestPreserveFile_FLBPreserveFails_HandlerNotCalled(t *testing.T) {
	w := newWorld()
	bt := newBoot(t, w, newTestMem(), Options{})
	s, _ := bt.c.CreateSession("s")
	w.fail.set("flb preserve B", unix.ENOMEM)
	if err := s.PreserveFile(1, memfd("f1")); !errors.Is(err, unix.ENOMEM) {
		t.Fatalf("PreserveFile = %v, want ENOMEM", err)
	}
	w.rec.Expect(t, "flb preserve A", "flb preserve B", "flb unpreserve A")
}

func TestPreserveFile_Errors(t *testing.T) {
	w := newWorld()
	mem := newTestMem()
	bt := newBoot(t, w, mem, Options{})
	s, _ := bt.c.CreateSession("s")
	mustPreserve(t, s, 7, memfd("f"))
	if err := s.PreserveFile(7, memfd("g")); !errors.Is(err, unix.EEXIST) {
		t.Errorf("token in use: %v, want EEXIST", err)
	}
	if err := s.PreserveFile(8, nil); !errors.Is(err, unix.EBADF) {
		t.Errorf("nil file: %v, want EBADF", err)
	}
	if err := s.PreserveFile(9, &testFile{kind: "socket"}); !errors.Is(err, unix.ENOENT) {
		t.Errorf("no handler: %v, want ENOENT", err)
	}
	s2, _ := bt.c.CreateSession("s2")
	before := mem.sizes()
	if err := s2.PreserveFile(1, &testFile{kind: "socket"}); !errors.Is(err, unix.ENOENT) {
		t.Errorf("no handler: %v, want ENOENT", err)
	}
	if got := mem.sizes(); !slices.Equal(got, before) {
		t.Errorf("file block of an empty session not freed: %v", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.PreserveFile(10, memfd("h")); !errors.Is(err, unix.EBADF) {
		t.Errorf("closed session: %v, want EBADF", err)
	}
}

func TestPreserveFile_129th_ENOSPC(t *testing.T) {
	w := newWorld()
	bt := newBoot(t, w, newTestMem(), Options{})
	s, _ := bt.c.CreateSession("s")
	for i := range FileMax {
		mustPreserve(t, s, uint64(i), memfd(fmt.Sprint(i)))
	}
	if err := s.PreserveFile(FileMax, memfd("x")); !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("PreserveFile = %v, want ENOSPC", err)
	}
	// The token check comes first.
	if err := s.PreserveFile(0, memfd("x")); !errors.Is(err, unix.EEXIST) {
		t.Fatalf("PreserveFile = %v, want EEXIST", err)
	}
}

func TestPreserveFile_FirstAcceptingHandlerWins(t *testing.T) {
	w := newWorld()
	c := New(newTestMem(), Options{})
	first, second := w.handler("memfd", false), w.handler("memfd-v2", false)
	second.Ops.CanPreserve = first.Ops.CanPreserve
	for _, h := range []*FileHandler{first, second} {
		if err := c.RegisterFileHandler(h); err != nil {
			t.Fatal(err)
		}
	}
	s, _ := c.CreateSession("s")
	mustPreserve(t, s, 1, memfd("f"))
	w.rec.Expect(t, "memfd preserve f")
}

func TestAbort_UnpreservesNewestFirst_EachFLBOnce(t *testing.T) {
	w := newWorld()
	mem := newTestMem()
	bt := newBoot(t, w, mem, Options{})
	fdtPA, err := bt.c.SetupOutgoing()
	if err != nil {
		t.Fatal(err)
	}
	base := mem.sizes()
	s1, _ := bt.c.CreateSession("s1")
	s2, _ := bt.c.CreateSession("s2")
	mustPreserve(t, s1, 1, memfd("f1"))
	mustPreserve(t, s1, 2, memfd("f2"))
	mustPreserve(t, s2, 3, memfd("f3"))
	w.rec.Take()
	if err := bt.c.Abort(); err != nil {
		t.Fatal(err)
	}
	d := func(n string) string { return fmt.Sprintf("data=%#x priv=priv:%s", fileData(n), n) }
	w.rec.Expect(t,
		"memfd unpreserve f2 "+d("f2"), "memfd unpreserve f1 "+d("f1"),
		"memfd unpreserve f3 "+d("f3"), "flb unpreserve B", "flb unpreserve A")
	if got := mem.sizes(); !slices.Equal(got, base) {
		t.Fatalf("blocks %v, want %v (file blocks freed)", got, base)
	}
	if out, _ := bt.c.Sessions(); len(out) != 0 {
		t.Fatalf("sessions left: %v", out)
	}
	// Nothing is serialized afterwards.
	handover(t, bt.c, mem, fdtPA)
	page := flbPage(t, mem, fdtPA)
	if _, count, _ := flb.ReadHeader(page); count != 0 {
		t.Fatalf("FLB count %d after abort, want 0", count)
	}
}

func TestSerialize_FreezeFails_UnfreezesAndSkipsFLBs(t *testing.T) {
	w := newWorld()
	mem := newTestMem()
	bt := newBoot(t, w, mem, Options{})
	fdtPA, err := bt.c.SetupOutgoing()
	if err != nil {
		t.Fatal(err)
	}
	s1, _ := bt.c.CreateSession("s1")
	s2, _ := bt.c.CreateSession("s2")
	mustPreserve(t, s1, 1, memfd("f1"))
	mustPreserve(t, s2, 2, memfd("f2"))
	mustPreserve(t, s2, 3, memfd("f3"))
	w.rec.Take()
	w.fail.set("freeze f3", unix.EAGAIN)
	if err := bt.c.Serialize(); !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("Serialize = %v, want EAGAIN", err)
	}
	w.rec.Expect(t, "memfd freeze f1", "memfd freeze f2", "memfd freeze f3", "memfd unfreeze f2", "memfd unfreeze f1")
	block := sessionBlock(t, mem, fdtPA)
	if !allZero(block) {
		t.Fatal("session block not clean after a failed serialize")
	}
	if _, count, _ := flb.ReadHeader(flbPage(t, mem, fdtPA)); count != 0 {
		t.Fatal("FLBs serialized despite failed session serialize")
	}
	// 7.0 resets the data of unfrozen files: unpreserve then sees 0.
	if err := bt.c.Abort(); err != nil {
		t.Fatal(err)
	}
	w.rec.Expect(t,
		"memfd unpreserve f1 data=0x0 priv=priv:f1",
		fmt.Sprintf("memfd unpreserve f3 data=%#x priv=priv:f3", fileData("f3")),
		"memfd unpreserve f2 data=0x0 priv=priv:f2",
		"flb unpreserve B", "flb unpreserve A")
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

package luo

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/kho-sim/kho-sim/internal/recorder"
	"github.com/kho-sim/kho-sim/pkg/flb"
	"github.com/kho-sim/kho-sim/pkg/physmem"
	"golang.org/x/sys/unix"
)

// testMem is an in-memory Memory: preserved blocks by physical address.
type testMem struct {
	mu        sync.Mutex
	next      uint64
	blocks    map[uint64][]byte
	allocs    int
	failAlloc map[int]error // by allocation number, from 0
}

func newTestMem() *testMem {
	return &testMem{next: 0x100000, blocks: map[uint64][]byte{}, failAlloc: map[int]error{}}
}

func (m *testMem) AllocPreserve(size uint64) (uint64, []byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.allocs++
	if err := m.failAlloc[m.allocs-1]; err != nil {
		return 0, nil, err
	}
	pa := m.next
	m.next += (size + physmem.PageSize - 1) &^ (physmem.PageSize - 1)
	b := make([]byte, size)
	m.blocks[pa] = b
	return pa, b, nil
}

func (m *testMem) UnpreserveFree(pa uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.blocks[pa]; !ok {
		return fmt.Errorf("free %#x: not preserved: %w", pa, unix.EINVAL)
	}
	delete(m.blocks, pa)
	return nil
}

func (m *testMem) Map(pa, size uint64) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for start, b := range m.blocks {
		if pa >= start && pa-start+size <= uint64(len(b)) {
			return b[pa-start:][:size], nil
		}
	}
	return nil, fmt.Errorf("map %#x+%#x: not preserved: %w", pa, size, unix.EFAULT)
}

// sizes returns the sizes of the preserved blocks, sorted.
func (m *testMem) sizes() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	var s []int
	for _, b := range m.blocks {
		s = append(s, len(b))
	}
	slices.Sort(s)
	return s
}

// testFile is what the test handlers preserve: kind selects the handler.
type testFile struct{ kind, name string }

// fail makes callbacks fail, keyed by "op name" (e.g. "preserve f1").
type fail struct {
	mu  sync.Mutex
	err map[string]error
	no  map[string]bool // can_finish answers false
}

func (f *fail) get(key string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err[key]
}

func (f *fail) set(key string, err error) {
	f.mu.Lock()
	f.err[key] = err
	f.mu.Unlock()
}

// world builds handlers and FLBs that record into one recorder.
type world struct {
	rec   *recorder.Recorder
	fail  *fail
	names sync.Map // file data handle -> file name, across boots
}

func newWorld() *world {
	return &world{rec: &recorder.Recorder{}, fail: &fail{err: map[string]error{}, no: map[string]bool{}}}
}

func fileData(name string) uint64 {
	var d uint64 = 1469598103934665603
	for _, c := range []byte(name) {
		d = (d ^ uint64(c)) * 1099511628211
	}
	return d
}

func (w *world) nameOf(data uint64) string {
	if v, ok := w.names.Load(data); ok {
		return v.(string)
	}
	return fmt.Sprintf("%#x", data)
}

// handler returns a file handler for files of the given kind.
func (w *world) handler(kind string, withFreeze bool) *FileHandler {
	ops := FileOps{
		CanPreserve: func(_ *FileHandler, file any) bool {
			f, ok := file.(*testFile)
			return ok && f.kind == kind
		},
		Preserve: func(a *FileOpArgs) error {
			f := a.File.(*testFile)
			w.rec.Add("%s preserve %s", kind, f.name)
			if err := w.fail.get("preserve " + f.name); err != nil {
				return err
			}
			a.SerializedData, a.PrivateData = fileData(f.name), "priv:"+f.name
			w.names.Store(a.SerializedData, f.name)
			return nil
		},
		Unpreserve: func(a *FileOpArgs) {
			w.rec.Add("%s unpreserve %s data=%#x priv=%v", kind, a.File.(*testFile).name, a.SerializedData, a.PrivateData)
		},
		Retrieve: func(a *FileOpArgs) error {
			name := w.nameOf(a.SerializedData)
			w.rec.Add("%s retrieve %s", kind, name)
			if err := w.fail.get("retrieve " + name); err != nil {
				return err
			}
			a.File = &testFile{kind: kind, name: name}
			return nil
		},
		CanFinish: func(a *FileOpArgs) bool {
			w.fail.mu.Lock()
			defer w.fail.mu.Unlock()
			return !w.fail.no[w.nameOf(a.SerializedData)]
		},
		Finish: func(a *FileOpArgs) {
			name := "?"
			if f, ok := a.File.(*testFile); ok {
				name = f.name
			}
			w.rec.Add("%s finish %s retrieved=%v", kind, name, a.Retrieved)
		},
	}
	if withFreeze {
		ops.Freeze = func(a *FileOpArgs) error {
			name := a.File.(*testFile).name
			w.rec.Add("%s freeze %s", kind, name)
			return w.fail.get("freeze " + name)
		}
		ops.Unfreeze = func(a *FileOpArgs) { w.rec.Add("%s unfreeze %s", kind, a.File.(*testFile).name) }
	}
	return &FileHandler{Compatible: kind, Ops: ops}
}

// flb returns an FLB that records into the world.
func (w *world) flb(name string) *flb.FLB {
	return &flb.FLB{Compatible: name, Ops: &flb.Ops{
		Preserve: func(a *flb.OpArgs) error {
			w.rec.Add("flb preserve %s", name)
			if err := w.fail.get("flb preserve " + name); err != nil {
				return err
			}
			a.Data, a.Obj = fileData(name), "out:"+name
			return nil
		},
		Unpreserve: func(a *flb.OpArgs) { w.rec.Add("flb unpreserve %s", name) },
		Retrieve: func(a *flb.OpArgs) error {
			w.rec.Add("flb retrieve %s data-ok=%v", name, a.Data == fileData(name))
			a.Obj = "in:" + name
			return nil
		},
		Finish: func(a *flb.OpArgs) { w.rec.Add("flb finish %s obj=%v", name, a.Obj) },
	}}
}

// boot is one simulated boot with handler "memfd" (FLBs A, B) and handler
// "vfio" (FLB B).
type boot struct {
	c           *Core
	memfd, vfio *FileHandler
	a, b        *flb.FLB
}

func newBoot(t testing.TB, w *world, mem Memory, opts Options) *boot {
	t.Helper()
	bt := &boot{c: New(mem, opts), memfd: w.handler("memfd", true), vfio: w.handler("vfio", false), a: w.flb("A"), b: w.flb("B")}
	for _, h := range []*FileHandler{bt.memfd, bt.vfio} {
		if err := bt.c.RegisterFileHandler(h); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []struct {
		h *FileHandler
		f *flb.FLB
	}{{bt.memfd, bt.a}, {bt.memfd, bt.b}, {bt.vfio, bt.b}} {
		if err := bt.c.RegisterFLB(r.h, r.f); err != nil {
			t.Fatal(err)
		}
	}
	return bt
}

func memfd(name string) *testFile { return &testFile{kind: "memfd", name: name} }

func mustPreserve(t testing.TB, s *Session, token uint64, f *testFile) {
	t.Helper()
	if err := s.PreserveFile(token, f); err != nil {
		t.Fatal(err)
	}
}

// handover runs boot 1's outgoing side and returns the LUO FDT bytes.
func handover(t testing.TB, c *Core, mem *testMem, fdtPA uint64) []byte {
	t.Helper()
	if err := c.Serialize(); err != nil {
		t.Fatal(err)
	}
	blob, err := mem.Map(fdtPA, FDTSize)
	if err != nil {
		t.Fatal(err)
	}
	return blob
}

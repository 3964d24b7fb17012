package flb

import (
	"encoding/binary"
	"errors"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/internal/recorder"
	"github.com/kho-sim/kho-sim/pkg/kernel"
)

// testFLB builds FLBs whose callbacks record into a recorder; the fail maps
// make a callback fail with the given error.
type testFLB struct {
	rec          *recorder.Recorder
	failPreserve map[string]error
	failRetrieve map[string]error
	nilObj       bool
	mu           sync.Mutex
}

func newTestFLB() *testFLB {
	return &testFLB{rec: &recorder.Recorder{}, failPreserve: map[string]error{}, failRetrieve: map[string]error{}}
}

// dataFor is the handle .preserve returns for an FLB named name.
func dataFor(name string) uint64 {
	var d uint64
	for _, c := range []byte(name) {
		d = d*131 + uint64(c)
	}
	return d
}

func (tf *testFLB) flb(name string, owner *Module) *FLB {
	short := name
	return &FLB{Compatible: name, Ops: &Ops{
		Preserve: func(a *OpArgs) error {
			tf.rec.Add("preserve %s", short)
			tf.mu.Lock()
			err := tf.failPreserve[short]
			tf.mu.Unlock()
			if err != nil {
				return err
			}
			a.Data, a.Obj = dataFor(short), "out:"+short
			return nil
		},
		Unpreserve: func(a *OpArgs) { tf.rec.Add("unpreserve %s data=%#x obj=%v", short, a.Data, a.Obj) },
		Retrieve: func(a *OpArgs) error {
			tf.rec.Add("retrieve %s data=%#x", short, a.Data)
			tf.mu.Lock()
			err := tf.failRetrieve[short]
			tf.mu.Unlock()
			if err != nil {
				return err
			}
			if !tf.nilObj {
				a.Obj = "in:" + short
			}
			return nil
		},
		Finish: func(a *OpArgs) { tf.rec.Add("finish %s obj=%v", short, a.Obj) },
		Owner:  owner,
	}}
}

func registeredHandler() *FileHandler {
	h := &FileHandler{}
	h.MarkRegistered()
	return h
}

// mustRegister links every FLB to h, failing the test on error.
func mustRegister(t testing.TB, k *Kernel, h *FileHandler, flbs ...*FLB) {
	t.Helper()
	for _, f := range flbs {
		if err := k.RegisterFLB(h, f); err != nil {
			t.Fatalf("RegisterFLB(%q): %v", f.Compatible, err)
		}
	}
}

// pageEntry is an entry to lay out in a hand-made incoming page.
type pageEntry struct {
	name  string // raw bytes, copied as is (up to NameLen)
	data  uint64
	count uint64
}

// makePage builds an incoming FLB page with the given header count and
// entries written from index 0 (entries beyond the page are dropped).
func makePage(count uint64, entries ...pageEntry) []byte {
	p := make([]byte, kernel.PageSize)
	binary.LittleEndian.PutUint64(p[0:], PageCount)
	binary.LittleEndian.PutUint64(p[8:], count)
	for i, e := range entries {
		off := HeaderSize + i*EntrySize
		if off+NameLen > kernel.PageSize {
			break
		}
		copy(p[off:off+NameLen], e.name)
		if off+EntrySize <= kernel.PageSize {
			binary.LittleEndian.PutUint64(p[off+NameLen:], e.data)
			binary.LittleEndian.PutUint64(p[off+NameLen+8:], e.count)
		}
	}
	return p
}

// fakeQuiescer counts calls and answers Quiesce with ok.
type fakeQuiescer struct {
	ok              bool
	quiesce, resume int
}

func (q *fakeQuiescer) Quiesce() bool { q.quiesce++; return q.ok }
func (q *fakeQuiescer) Resume()       { q.resume++ }

// warnOptions returns opts with a Warn hook that records each WARN_ON into
// the returned testFLB's recorder as "WARN SITE FLB ERRNO", in order with
// the callbacks.
func warnOptions(opts Options) (Options, *testFLB) {
	tf := newTestFLB()
	opts.Warn = func(w Warning) {
		var errno unix.Errno
		errors.As(w.Err, &errno)
		tf.rec.Add("WARN %s %s %s", w.Site, w.FLB, unix.ErrnoName(errno))
	}
	return opts, tf
}

// incomingSetupWith registers a, b, c, recording into tf, on one handler and
// installs an incoming page holding the given entries (none when nil).
func incomingSetupWith(t *testing.T, opts Options, tf *testFLB, page []byte) (*Kernel, *testFLB, *FileHandler, []*FLB) {
	t.Helper()
	k := New(opts)
	h := registeredHandler()
	flbs := []*FLB{tf.flb("a", nil), tf.flb("b", nil), tf.flb("c", nil)}
	mustRegister(t, k, h, flbs...)
	if page != nil {
		if err := k.SetupIncoming(page); err != nil {
			t.Fatal(err)
		}
	}
	return k, tf, h, flbs
}

package luo

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/kho-sim/kho-sim/pkg/flb"
	"golang.org/x/sys/unix"
)

// TestConcurrentSessions_FLBCountsBalance runs sessions in parallel that
// preserve files of both handlers, close, and repeat, while another goroutine
// keeps trying to register an FLB (EBUSY or success, never a race).
func TestConcurrentSessions_FLBCountsBalance(t *testing.T) {
	w := newWorld()
	mem := newTestMem()
	bt := newBoot(t, w, mem, Options{})
	if _, err := bt.c.SetupOutgoing(); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var reg sync.WaitGroup
	reg.Add(1)
	go func() {
		defer reg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			f := w.flb(fmt.Sprintf("late-%d", i))
			err := bt.c.RegisterFLB(bt.vfio, f)
			if err == nil {
				err = bt.c.UnregisterFLB(bt.vfio, f)
			}
			if err != nil && !errors.Is(err, unix.EBUSY) {
				t.Error(err)
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range 20 {
				s, err := bt.c.CreateSession(fmt.Sprintf("g%d-%d", g, round))
				if err != nil {
					t.Error(err)
					return
				}
				for i := range 6 {
					kind := []string{"memfd", "vfio"}[i%2]
					if err := s.PreserveFile(uint64(i), &testFile{kind: kind, name: fmt.Sprintf("g%d-%d-%d", g, round, i)}); err != nil {
						t.Error(err)
						return
					}
					if _, err := bt.c.FLB().GetOutgoing(bt.b); err != nil {
						t.Error(err)
					}
				}
				if err := s.Close(); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	reg.Wait()
	counts := map[string]int{}
	for _, ev := range w.rec.Take() {
		for _, op := range []string{"flb preserve ", "flb unpreserve "} {
			if name, ok := strings.CutPrefix(ev, op); ok {
				counts[op+name]++
			}
		}
	}
	for _, name := range []string{"A", "B"} {
		if p, u := counts["flb preserve "+name], counts["flb unpreserve "+name]; p == 0 || p != u {
			t.Errorf("FLB %s: %d preserves, %d unpreserves", name, p, u)
		}
	}
	for _, f := range []*flb.FLB{bt.a, bt.b} {
		if st := f.State(); st.OutgoingCount != 0 || st.OutgoingObj != nil {
			t.Errorf("%s: %+v", f.Compatible, st)
		}
	}
}

// benchBoot registers one handler with n FLBs whose callbacks do no work.
func benchBoot(b *testing.B, mem Memory, n int) (*Core, []*flb.FLB) {
	c := New(mem, Options{FLB: flb.Options{FixFinishBeforeRetrieve: true}})
	h := &FileHandler{Compatible: "memfd-v1", Ops: FileOps{
		CanPreserve: func(*FileHandler, any) bool { return true },
		Preserve:    func(a *FileOpArgs) error { a.SerializedData = uint64(a.File.(int)); return nil },
		Unpreserve:  func(*FileOpArgs) {},
		Retrieve:    func(a *FileOpArgs) error { a.File = int(a.SerializedData); return nil },
		Finish:      func(*FileOpArgs) {},
	}}
	if err := c.RegisterFileHandler(h); err != nil {
		b.Fatal(err)
	}
	ops := &flb.Ops{
		Preserve:   func(a *flb.OpArgs) error { a.Data, a.Obj = 1, a.FLB; return nil },
		Unpreserve: func(*flb.OpArgs) {},
		Retrieve:   func(a *flb.OpArgs) error { a.Obj = a.FLB; return nil },
		Finish:     func(*flb.OpArgs) {},
	}
	flbs := make([]*flb.FLB, n)
	for i := range flbs {
		flbs[i] = &flb.FLB{Compatible: fmt.Sprintf("bench-flb-%02d", i), Ops: ops}
		if err := c.RegisterFLB(h, flbs[i]); err != nil {
			b.Fatal(err)
		}
	}
	return c, flbs
}

// BenchmarkFullCycle63FLBs128Files measures one live update as LUO sees it:
// boot 1 preserves 128 files depending on 63 FLBs and serializes; boot 2
// restores the handover, retrieves every file and finishes the session.
func BenchmarkFullCycle63FLBs128Files(b *testing.B) {
	for b.Loop() {
		mem := newTestMem()
		c, _ := benchBoot(b, mem, flb.Max)
		fdtPA, err := c.SetupOutgoing()
		if err != nil {
			b.Fatal(err)
		}
		s, err := c.CreateSession("bench")
		if err != nil {
			b.Fatal(err)
		}
		for i := range FileMax {
			if err := s.PreserveFile(uint64(i), i); err != nil {
				b.Fatal(err)
			}
		}
		if err := c.Serialize(); err != nil {
			b.Fatal(err)
		}

		next, flbs := benchBoot(b, mem, flb.Max)
		blob, err := mem.Map(fdtPA, FDTSize)
		if err != nil {
			b.Fatal(err)
		}
		if err := next.SetupIncoming(blob); err != nil {
			b.Fatal(err)
		}
		in, err := next.RetrieveSession("bench")
		if err != nil {
			b.Fatal(err)
		}
		for i := range FileMax {
			if _, err := in.RetrieveFile(uint64(i)); err != nil {
				b.Fatal(err)
			}
		}
		if err := in.Finish(); err != nil {
			b.Fatal(err)
		}
		if st := flbs[flb.Max-1].State(); !st.Finished {
			b.Fatalf("last FLB not finished: %+v", st)
		}
	}
}

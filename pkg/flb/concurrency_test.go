package flb

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/kho-sim/kho-sim/pkg/kernel"
)

// TestConcurrentPreserveUnpreserve_CountsBalance runs many goroutines that
// preserve and unpreserve files of handlers sharing FLBs. Each FLB's
// .preserve and .unpreserve must alternate, and all counts end at zero.
func TestConcurrentPreserveUnpreserve_CountsBalance(t *testing.T) {
	k := New(Options{})
	tf := newTestFLB()
	shared := tf.flb("shared", nil)
	handlers := make([]*FileHandler, 4)
	for i := range handlers {
		handlers[i] = registeredHandler()
		mustRegister(t, k, handlers[i], shared, tf.flb(fmt.Sprintf("own-%d", i), nil))
	}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := handlers[g%len(handlers)]
			for range 200 {
				if err := k.FilePreserve(h); err != nil {
					t.Error(err)
					return
				}
				if _, err := k.GetOutgoing(shared); err != nil {
					t.Error(err)
				}
				k.FileUnpreserve(h)
			}
		}()
	}
	wg.Wait()
	depth := map[string]int{}
	for _, ev := range tf.rec.Take() {
		name := ev[strings.IndexByte(ev, ' ')+1:]
		if i := strings.IndexByte(name, ' '); i >= 0 {
			name = name[:i]
		}
		switch {
		case strings.HasPrefix(ev, "preserve "):
			depth[name]++
		case strings.HasPrefix(ev, "unpreserve "):
			depth[name]--
		}
		if d := depth[name]; d < 0 || d > 1 {
			t.Fatalf("%s: preserve/unpreserve do not alternate (depth %d)", name, d)
		}
	}
	for _, f := range k.Registered() {
		if s := f.State(); s.OutgoingCount != 0 || s.OutgoingObj != nil {
			t.Errorf("%s: %+v", f.Compatible, s)
		}
	}
}

// TestConcurrentGetIncoming_RetrievesOnce has many goroutines race for the
// first GetIncoming and then finish one file each.
func TestConcurrentGetIncoming_RetrievesOnce(t *testing.T) {
	const files = 32
	k := New(Options{})
	tf := newTestFLB()
	f := tf.flb("a", nil)
	h := registeredHandler()
	mustRegister(t, k, h, f)
	if err := k.SetupIncoming(makePage(1, pageEntry{"a", 9, files})); err != nil {
		t.Fatal(err)
	}
	var ready, done sync.WaitGroup
	ready.Add(files)
	for range files {
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			ready.Wait()
			if obj, err := k.GetIncoming(f); err != nil || obj != "in:a" {
				t.Errorf("GetIncoming = %v, %v", obj, err)
			}
		}()
	}
	done.Wait()
	for range files {
		done.Add(1)
		go func() {
			defer done.Done()
			if err := k.FileFinish(h); err != nil {
				t.Error(err)
			}
		}()
	}
	done.Wait()
	tf.rec.Expect(t, "retrieve a data=0x9", "finish a obj=in:a")
}

// TestConcurrentRegisterAndPreserve_Race registers and unregisters FLBs on one
// handler while another handler's files are preserved (nil Quiescer).
func TestConcurrentRegisterAndPreserve_Race(t *testing.T) {
	k := New(Options{})
	tf := newTestFLB()
	busy, idle := registeredHandler(), registeredHandler()
	mustRegister(t, k, busy, tf.flb("busy", nil))
	page := make([]byte, kernel.PageSize)
	if err := k.SetupOutgoing(page); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		for i := range 100 {
			f := tf.flb(fmt.Sprintf("idle-%d", i), nil)
			if err := k.RegisterFLB(idle, f); err != nil {
				t.Error(err)
				return
			}
			if err := k.UnregisterFLB(idle, f); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for range 100 {
			if err := k.FilePreserve(busy); err != nil {
				t.Error(err)
				return
			}
			k.FileUnpreserve(busy)
		}
	}()
	go func() {
		defer wg.Done()
		for range 100 {
			if err := k.Serialize(); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	wg.Wait()
}

func BenchmarkFilePreserveUnpreserve63(b *testing.B) {
	k := New(Options{})
	tf := newTestFLB()
	h := registeredHandler()
	for i := range Max {
		mustRegister(b, k, h, tf.flb(fmt.Sprintf("flb-%d", i), nil))
	}
	if err := k.FilePreserve(h); err != nil { // keep counts above zero
		b.Fatal(err)
	}
	for b.Loop() {
		if err := k.FilePreserve(h); err != nil {
			b.Fatal(err)
		}
		k.FileUnpreserve(h)
	}
}

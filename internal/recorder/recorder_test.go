package recorder

import (
	"fmt"
	"slices"
	"sync"
	"testing"
)

func TestRecorder(t *testing.T) {
	var r Recorder
	r.Add("preserve %s", "a")
	r.Add("finish %d", 2)
	if got := r.Take(); !slices.Equal(got, []string{"preserve a", "finish 2"}) {
		t.Fatalf("Take = %q", got)
	}
	if got := r.Take(); got != nil {
		t.Fatalf("second Take = %q, want nothing", got)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.Add("g%d", i)
		}()
	}
	wg.Wait()
	got := r.Take()
	slices.Sort(got)
	var want []string
	for i := range 8 {
		want = append(want, fmt.Sprintf("g%d", i))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("concurrent Adds: %q", got)
	}
	r.Add("x")
	r.Expect(t, "x")
}

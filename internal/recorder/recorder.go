// Package recorder collects the events a test's callbacks report, in call
// order and safely from many goroutines, so a test can demand the exact
// sequence a kernel function must produce (pkg/flb and pkg/luo check the
// order of every preserve, retrieve and finish this way).
package recorder

import (
	"fmt"
	"slices"
	"sync"
	"testing"
)

// Recorder is a list of events; its zero value is empty and ready.
type Recorder struct {
	mu     sync.Mutex
	events []string
}

// Add records one event, formatted as by fmt.Sprintf.
func (r *Recorder) Add(format string, a ...any) {
	r.mu.Lock()
	r.events = append(r.events, fmt.Sprintf(format, a...))
	r.mu.Unlock()
}

// Take returns the events recorded since the last Take and forgets them.
func (r *Recorder) Take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ev := r.events
	r.events = nil
	return ev
}

// Expect takes the events and fails t unless they are want, in order.
func (r *Recorder) Expect(t testing.TB, want ...string) {
	t.Helper()
	if got := r.Take(); !slices.Equal(got, want) {
		t.Fatalf("events:\n got  %q\n want %q", got, want)
	}
}

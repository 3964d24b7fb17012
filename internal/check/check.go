package check

import (
	"fmt"
	"maps"
	"slices"
	"sync"
)

// Kind names an FLB callback.
type Kind string

// The four FLB callbacks of struct liveupdate_flb_ops.
const (
	Preserve   Kind = "preserve"
	Unpreserve Kind = "unpreserve"
	Retrieve   Kind = "retrieve"
	Finish     Kind = "finish"
)

// Event is one FLB callback as the simulated subsystem saw it.
type Event struct {
	Boot int
	Kind Kind
	FLB  string
	// Data is the handle preserve returned, or the one retrieve was given.
	Data uint64
	// Err is set when the callback failed (an injected fault).
	Err error
}

func (e Event) String() string {
	s := fmt.Sprintf("boot %d %s %s data=%#x", e.Boot, e.Kind, e.FLB, e.Data)
	if e.Err != nil {
		s += fmt.Sprintf(" failed: %v", e.Err)
	}
	return s
}

// Promise names each promise the checker holds the kernel to; results are
// reported under these names.
type Promise string

// The promises of luo_flb.c's DOC comment and function comments.
const (
	SavedOncePerTransition Promise = "state saved exactly once per 0->1 transition"
	UnpreservedAtZero      Promise = "unpreserve exactly when the outgoing count returns to 0"
	SerializedCount        Promise = "serialized count equals the preserved dependent files"
	RetrievedAtMostOnce    Promise = "retrieve at most once"
	FinishedOnceAtLast     Promise = "finish exactly once when the last dependent file finishes"
	RetrievedDataIntact    Promise = "retrieved data equals what was preserved"
)

// Promises lists every promise in report order.
var Promises = []Promise{SavedOncePerTransition, UnpreservedAtZero, SerializedCount, RetrievedAtMostOnce, FinishedOnceAtLast, RetrievedDataIntact}

// Violation is one broken promise with the reason.
type Violation struct {
	Promise Promise
	FLB     string
	Reason  string
}

func (v Violation) String() string { return fmt.Sprintf("%s: %s", v.FLB, v.Reason) }

// flbState is what the checker knows of one FLB in the current boot.
type flbState struct {
	files     int    // preserved dependent files (outgoing)
	live      bool   // a successful preserve not yet undone
	data      uint64 // data of the live preserve
	incoming  int    // dependent files handed over (incoming)
	finished  int    // dependent files finished (incoming)
	inData    uint64 // data the previous boot serialized
	retrieves int
	finishes  int
}

// Checker checks one simulated boot. It is safe for concurrent use: the
// callbacks of a load test arrive from many goroutines.
type Checker struct {
	mu         sync.Mutex
	boot       int
	deps       map[string][]string // handler -> FLBs, registration order
	flbs       map[string]*flbState
	events     []Event
	violations []Violation
}

// New returns a checker for boot number boot.
func New(boot int) *Checker {
	return &Checker{boot: boot, deps: map[string][]string{}, flbs: map[string]*flbState{}}
}

func (c *Checker) flb(name string) *flbState {
	s, ok := c.flbs[name]
	if !ok {
		s = &flbState{}
		c.flbs[name] = s
	}
	return s
}

func (c *Checker) violate(p Promise, flb, format string, args ...any) {
	c.violations = append(c.violations, Violation{p, flb, fmt.Sprintf(format, args...)})
}

// Depends records that files of handler depend on flbs (registration order),
// as a successful liveupdate_register_flb establishes.
func (c *Checker) Depends(handler string, flbs ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deps[handler] = append(c.deps[handler], flbs...)
}

// Undepends records a successful liveupdate_unregister_flb.
func (c *Checker) Undepends(handler, flb string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deps[handler] = slices.DeleteFunc(c.deps[handler], func(s string) bool { return s == flb })
}

// Record notes one FLB callback and checks it against the promises that
// concern a single callback.
func (c *Checker) Record(e Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e.Boot = c.boot
	c.events = append(c.events, e)
	s := c.flb(e.FLB)
	switch e.Kind {
	case Preserve:
		if e.Err != nil {
			return
		}
		if s.live {
			c.violate(SavedOncePerTransition, e.FLB, "preserve called again while its state was already saved (data %#x)", s.data)
		}
		s.live, s.data = true, e.Data
	case Unpreserve:
		if !s.live {
			c.violate(UnpreservedAtZero, e.FLB, "unpreserve called with no saved state")
		}
		if e.Data != s.data {
			c.violate(UnpreservedAtZero, e.FLB, "unpreserve got data %#x, preserve returned %#x", e.Data, s.data)
		}
		s.live, s.data = false, 0
	case Retrieve:
		if e.Err != nil {
			return
		}
		s.retrieves++
		if s.retrieves > 1 {
			c.violate(RetrievedAtMostOnce, e.FLB, "retrieve called %d times in one boot", s.retrieves)
		}
		if e.Data != s.inData {
			c.violate(RetrievedDataIntact, e.FLB, "retrieve got data %#x, the previous kernel serialized %#x", e.Data, s.inData)
		}
	case Finish:
		s.finishes++
		if s.finishes > 1 {
			c.violate(FinishedOnceAtLast, e.FLB, "finish called %d times", s.finishes)
		} else if s.finished < s.incoming {
			c.violate(FinishedOnceAtLast, e.FLB, "finish called after %d of %d dependent files finished", s.finished, s.incoming)
		}
	}
}

// PayloadMismatch reports that a retrieved object did not match what the
// previous boot preserved (checksum, size or content).
func (c *Checker) PayloadMismatch(flb, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.violate(RetrievedDataIntact, flb, "%s", reason)
}

// FilePreserved notes that a file of handler was preserved successfully.
func (c *Checker) FilePreserved(handler string) { c.fileDelta(handler, +1) }

// FileUnpreserved notes that a preserved file of handler was unpreserved.
func (c *Checker) FileUnpreserved(handler string) { c.fileDelta(handler, -1) }

func (c *Checker) fileDelta(handler string, d int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.deps[handler] {
		c.flb(f).files += d
	}
}

// Settle checks the outgoing invariant after a file operation completed
// (successfully or not): an FLB's state is saved exactly while at least
// one dependent file is preserved. A failed file preserve must therefore
// leave every FLB as it was, which is what the kernel's rollback promises.
func (c *Checker) Settle(step string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, name := range slices.Sorted(maps.Keys(c.flbs)) {
		s := c.flbs[name]
		switch {
		case s.files > 0 && !s.live:
			c.violate(SavedOncePerTransition, name, "after %s: %d dependent files preserved but no saved state", step, s.files)
			s.live = true // report once
		case s.files == 0 && s.live:
			c.violate(UnpreservedAtZero, name, "after %s: no dependent file preserved but state still saved (data %#x)", step, s.data)
			s.live = false
		}
	}
}

// Serialized checks the FLB table the kernel wrote at reboot: exactly the
// FLBs with preserved dependent files, each with their count and the data
// of their live preserve.
func (c *Checker) Serialized(entries []Entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	got := map[string]Entry{}
	for _, e := range entries {
		got[e.Name] = e
	}
	for _, name := range slices.Sorted(maps.Keys(c.flbs)) {
		s := c.flbs[name]
		e, ok := got[name]
		switch {
		case s.files == 0 && ok:
			c.violate(SerializedCount, name, "serialized with count %d but no dependent file is preserved", e.Count)
		case s.files > 0 && !ok:
			c.violate(SerializedCount, name, "%d dependent files preserved but the FLB is missing from the serialized table", s.files)
		case ok && e.Count != uint64(s.files):
			c.violate(SerializedCount, name, "serialized count %d, preserved dependent files %d", e.Count, s.files)
		case ok && e.Data != s.data:
			c.violate(SerializedCount, name, "serialized data %#x, preserve returned %#x", e.Data, s.data)
		}
	}
	for _, e := range entries {
		if _, ok := c.flbs[e.Name]; !ok {
			c.violate(SerializedCount, e.Name, "serialized but never preserved in this boot")
		}
	}
}

// Entry is one FLB of a serialized table, as the next boot expects it.
type Entry struct {
	Name  string
	Data  uint64
	Count uint64
}

// Incoming tells the checker what the previous boot handed over: for each
// FLB, its data and how many dependent files came with it.
func (c *Checker) Incoming(entries []Entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range entries {
		s := c.flb(e.Name)
		s.incoming, s.inData = int(e.Count), e.Data
	}
}

// FileFinished notes that an incoming file of handler finished.
func (c *Checker) FileFinished(handler string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.deps[handler] {
		c.flb(f).finished++
	}
}

// Done runs the end-of-boot checks: every FLB whose dependent files all
// finished must have been finished exactly once.
func (c *Checker) Done() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, name := range slices.Sorted(maps.Keys(c.flbs)) {
		s := c.flbs[name]
		if s.incoming > 0 && s.finished >= s.incoming && s.finishes == 0 {
			c.violate(FinishedOnceAtLast, name, "all %d dependent files finished but finish was never called", s.incoming)
		}
	}
}

// Events returns every callback recorded so far, in order.
func (c *Checker) Events() []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.events)
}

// Violations returns the broken promises so far, in the order found.
func (c *Checker) Violations() []Violation {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.violations)
}

// ViolationsOf returns the broken promises of one kind.
func (c *Checker) ViolationsOf(p Promise) []Violation {
	var out []Violation
	for _, v := range c.Violations() {
		if v.Promise == p {
			out = append(out, v)
		}
	}
	return out
}

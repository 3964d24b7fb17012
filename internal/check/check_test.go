package check

import (
	"errors"
	"strings"
	"testing"
)

// step drives a checker the way a simulated kernel would.
type step func(c *Checker)

func pres(flb string, data uint64) step {
	return func(c *Checker) { c.Record(Event{Kind: Preserve, FLB: flb, Data: data}) }
}
func unpres(flb string, data uint64) step {
	return func(c *Checker) { c.Record(Event{Kind: Unpreserve, FLB: flb, Data: data}) }
}
func retr(flb string, data uint64) step {
	return func(c *Checker) { c.Record(Event{Kind: Retrieve, FLB: flb, Data: data}) }
}
func fin(flb string) step { return func(c *Checker) { c.Record(Event{Kind: Finish, FLB: flb}) } }
func filePres(h string) step {
	return func(c *Checker) { c.FilePreserved(h); c.Settle("preserve") }
}
func fileUnpres(h string) step {
	return func(c *Checker) { c.FileUnpreserved(h); c.Settle("unpreserve") }
}
func fileFin(h string) step      { return func(c *Checker) { c.FileFinished(h) } }
func settle() step               { return func(c *Checker) { c.Settle("step") } }
func serialized(e ...Entry) step { return func(c *Checker) { c.Serialized(e) } }
func incoming(e ...Entry) step   { return func(c *Checker) { c.Incoming(e) } }

func TestCheckerPromises(t *testing.T) {
	tests := []struct {
		name    string
		steps   []step
		promise Promise // "" = no violation expected
		reason  string
	}{
		{"shared FLB saved once", []step{pres("A", 1), filePres("h"), filePres("h"), serialized(Entry{"A", 1, 2})}, "", ""},
		{"saved twice", []step{pres("A", 1), filePres("h"), pres("A", 2), filePres("h")}, SavedOncePerTransition, "preserve called again"},
		{"not saved", []step{filePres("h")}, SavedOncePerTransition, "no saved state"},
		{"unpreserved at zero", []step{pres("A", 1), filePres("h"), unpres("A", 1), fileUnpres("h")}, "", ""},
		{"unpreserve too early", []step{pres("A", 1), filePres("h"), filePres("h"), unpres("A", 1), fileUnpres("h")}, SavedOncePerTransition, "no saved state"},
		{"never unpreserved", []step{pres("A", 1), filePres("h"), fileUnpres("h")}, UnpreservedAtZero, "state still saved"},
		{"unpreserve wrong data", []step{pres("A", 1), filePres("h"), unpres("A", 9), fileUnpres("h")}, UnpreservedAtZero, "got data 0x9"},
		{"failed preserve rolled back", []step{pres("A", 1), unpres("A", 1), settle()}, "", ""},
		{"failed preserve not rolled back", []step{pres("A", 1), settle()}, UnpreservedAtZero, "state still saved"},
		{"serialized count wrong", []step{pres("A", 1), filePres("h"), serialized(Entry{"A", 1, 3})}, SerializedCount, "serialized count 3, preserved dependent files 1"},
		{"serialized missing", []step{pres("A", 1), filePres("h"), serialized()}, SerializedCount, "missing"},
		{"serialized extra", []step{serialized(Entry{"B", 1, 1})}, SerializedCount, "never preserved"},
		{"retrieve twice", []step{incoming(Entry{"A", 5, 1}), retr("A", 5), retr("A", 5)}, RetrievedAtMostOnce, "2 times"},
		{"retrieve wrong data", []step{incoming(Entry{"A", 5, 1}), retr("A", 6)}, RetrievedDataIntact, "serialized 0x5"},
		{"finish at last", []step{incoming(Entry{"A", 5, 2}), retr("A", 5), fileFin("h"), fileFin("h"), fin("A")}, "", ""},
		{"finish early", []step{incoming(Entry{"A", 5, 2}), fileFin("h"), fin("A")}, FinishedOnceAtLast, "after 1 of 2"},
		{"finish twice", []step{incoming(Entry{"A", 5, 1}), fileFin("h"), fin("A"), fin("A")}, FinishedOnceAtLast, "2 times"},
		{"finish never", []step{incoming(Entry{"A", 5, 1}), fileFin("h")}, FinishedOnceAtLast, "never called"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New(1)
			c.Depends("h", "A")
			for _, s := range tt.steps {
				s(c)
			}
			c.Done()
			v := c.Violations()
			if tt.promise == "" {
				if len(v) != 0 {
					t.Fatalf("unexpected violations: %v", v)
				}
				return
			}
			if len(v) == 0 {
				t.Fatalf("want a violation of %q, got none", tt.promise)
			}
			if v[0].Promise != tt.promise || !strings.Contains(v[0].Reason, tt.reason) {
				t.Fatalf("got %q: %q, want %q containing %q", v[0].Promise, v[0].Reason, tt.promise, tt.reason)
			}
		})
	}
}

func TestCheckerFailedCallbackIgnored(t *testing.T) {
	c := New(0)
	c.Depends("h", "A")
	c.Record(Event{Kind: Preserve, FLB: "A", Err: errors.New("injected")})
	c.Settle("failed preserve")
	c.Done()
	if v := c.Violations(); len(v) != 0 {
		t.Fatalf("a failed preserve saved nothing, so nothing is owed: %v", v)
	}
	if got := len(c.Events()); got != 1 {
		t.Fatalf("events recorded: %d, want 1", got)
	}
}

func TestCheckerUndepends(t *testing.T) {
	c := New(0)
	c.Depends("h", "A", "B")
	c.Undepends("h", "A")
	c.Record(Event{Kind: Preserve, FLB: "B", Data: 1})
	c.FilePreserved("h")
	c.Settle("preserve")
	if v := c.Violations(); len(v) != 0 {
		t.Fatalf("A no longer depends: %v", v)
	}
}

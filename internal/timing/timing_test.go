package timing

import (
	"slices"
	"testing"
	"time"
)

func TestTSCAdvancesAndCalibrates(t *testing.T) {
	if !HasTSC {
		t.Skip("no TSC on this architecture")
	}
	a := TSC()
	hz := CalibrateTSC(5 * time.Millisecond)
	b := TSC()
	if b <= a {
		t.Fatalf("TSC did not advance: %d then %d", a, b)
	}
	if hz < 1e8 || hz > 1e11 {
		t.Fatalf("implausible TSC frequency %d Hz", hz)
	}
	d, ok := TSCDuration(a, b, hz)
	if !ok || d < 5*time.Millisecond || d > 5*time.Second {
		t.Fatalf("duration %v ok=%v", d, ok)
	}
}

func TestTSCDurationRejects(t *testing.T) {
	for _, c := range []struct{ from, to, hz uint64 }{{10, 5, 1e9}, {1, 2, 0}, {0, 5, 1e9}} {
		if _, ok := TSCDuration(c.from, c.to, c.hz); ok {
			t.Errorf("%+v accepted", c)
		}
	}
}

func TestPhases(t *testing.T) {
	var p Phases
	_ = p.Time("a", func() error { return nil })
	p.Add("b", time.Second)
	if l := p.List(); len(l) != 2 || l[0].Name != "a" || l[1].D != time.Second {
		t.Fatalf("%+v", l)
	}
	if Ms(1500*time.Microsecond) != "1.5 ms" {
		t.Fatal(Ms(1500 * time.Microsecond))
	}
}

func TestPhasesAccumulate(t *testing.T) {
	var p Phases
	for _, s := range []struct {
		name string
		d    time.Duration
	}{{"preserve-all", 2}, {"retrieve-all", 3}, {"preserve-all", 5}, {"finish", 7}} {
		p.Accumulate(s.name, s.d)
	}
	want := []Phase{{"preserve-all", 7}, {"retrieve-all", 3}, {"finish", 7}}
	if l := p.List(); !slices.Equal(l, want) {
		t.Fatalf("%+v, want %+v", l, want)
	}
}

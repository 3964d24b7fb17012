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
	d, ok := TSCDuration(a, b, hz, hz)
	if !ok || d < 5*time.Millisecond || d > 5*time.Second {
		t.Fatalf("duration %v ok=%v", d, ok)
	}
}

func TestTSCDuration(t *testing.T) {
	tests := []struct {
		name          string
		from, to      uint64
		hzThen, hzNow uint64
		want          time.Duration
		ok            bool
	}{
		{"same rate", 1e9, 3e9, 1e9, 1e9, 2 * time.Second, true},
		{"rates within 1%: the reading boot's counts", 1e9, 3e9, 1.009e9, 1e9, 2 * time.Second, true},
		{"counter went backwards (cold reset)", 10, 5, 1e9, 1e9, 0, false},
		{"no rate before", 1, 2, 0, 1e9, 0, false},
		{"no rate after", 1, 2, 1e9, 0, 0, false},
		{"no stamp", 0, 5, 1e9, 1e9, 0, false},
		{"one calibration 90 times off", 1e9, 3e9, 11111111, 1e9, 0, false},
		{"rates 1.1% apart", 1e9, 3e9, 1.011e9, 1e9, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, ok := TSCDuration(tt.from, tt.to, tt.hzThen, tt.hzNow)
			if d != tt.want || ok != tt.ok {
				t.Errorf("TSCDuration(%d, %d, %d, %d) = %v, %v; want %v, %v", tt.from, tt.to, tt.hzThen, tt.hzNow, d, ok, tt.want, tt.ok)
			}
		})
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

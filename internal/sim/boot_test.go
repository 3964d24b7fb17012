package sim

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/internal/timing"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// TestKexec_LoadAndDryRun: in run mode a kexec boot loads the next kernel
// with the handover; a load that fails, or a dry run, takes the abort path
// instead, and the run stops there.
func TestKexec_LoadAndDryRun(t *testing.T) {
	tests := []struct {
		name     string
		loadErr  error
		dryRun   bool
		ok, last bool
		want     []string // KTAP lines, in order
	}{
		{"loaded", nil, false, true, false, []string{
			"ok 10 handover image written", "# handover: kho_sim.fdt=", "ok 11 next kernel loaded"}},
		{"load fails", unix.ENOEXEC, false, false, true, []string{
			"ok 10 handover image written", "not ok 11 next kernel loaded", "# exec format error",
			"# abort path: loading the next kernel failed", "ok 12 abort path unpreserved every file and FLB once"}},
		{"dry run", nil, true, true, true, []string{
			"ok 11 next kernel loaded", "# abort path: dry run: the kernel was loaded and unloaded again",
			"ok 12 abort path unpreserved every file and FLB once"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := physmem.New(testBase, make([]byte, 16<<20))
			if err != nil {
				t.Fatal(err)
			}
			var loaded []Handover
			var out bytes.Buffer
			o := Run(Config{Region: r, Scenario: lookup(t, "sharing"), In: Handover{Boot: 1}, Boots: 3, Out: &out, DryRun: tt.dryRun,
				Load: func(next Handover) ([]timing.Phase, error) {
					loaded = append(loaded, next)
					return nil, tt.loadErr
				}})
			if o.OK != tt.ok || o.Last != tt.last {
				t.Errorf("ok=%v last=%v, want ok=%v last=%v", o.OK, o.Last, tt.ok, tt.last)
			}
			if len(loaded) != 1 || loaded[0].Boot != 2 || loaded[0].RootPA == 0 {
				t.Errorf("loaded %v, want one load of boot 2 with a handover", loaded)
			}
			if !tt.last && o.Next != loaded[0] {
				t.Errorf("next %v, want the handover loaded %v", o.Next, loaded[0])
			}
			rest := out.String()
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("KTAP lacks %q after the lines before it:\n%s", w, out.String())
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

// TestKexec_DamageFails: a damage hook that fails is a failed result and
// the run stops without loading anything.
func TestKexec_DamageFails(t *testing.T) {
	r, err := physmem.New(testBase, make([]byte, 16<<20))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	loads := 0
	o := Run(Config{Region: r, Scenario: lookup(t, "sharing"), In: Handover{Boot: 1}, Boots: 3, Out: &out,
		Damage: func(*physmem.Region, uint64) (string, error) { return "", errors.New("no such damage") },
		Load:   func(Handover) ([]timing.Phase, error) { loads++; return nil, nil }})
	if o.OK || !o.Last || loads != 0 || !strings.Contains(out.String(), "not ok 11 image damaged as asked\n    # no such damage") {
		t.Fatalf("ok=%v last=%v loads=%d, want a failed damage result and no load:\n%s", o.OK, o.Last, loads, out.String())
	}
}

// TestBlackoutNeedsAgreeingCalibrations: a boot reports the blackout since
// the reboot stamp only when its TSC calibration agrees with the one the
// handing-over boot recorded; a disagreement is said, not turned into a
// wrong duration.
func TestBlackoutNeedsAgreeingCalibrations(t *testing.T) {
	if !timing.HasTSC {
		t.Skip("no TSC on this architecture")
	}
	tests := []struct {
		name          string
		hzThen, hzNow uint64
		want          string
	}{
		{"same rate", 2e9, 2e9, "# phase blackout "},
		{"rates disagree", 22222222, 2e9, "# blackout not measured: the TSC ran at 22222222 Hz before the kexec and 2000000000 Hz after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := make([]byte, 16<<20)
			var out bytes.Buffer
			sc := lookup(t, "default")
			in := Handover{Boot: 1}
			for i, hz := range []uint64{tt.hzThen, tt.hzNow} {
				r, err := physmem.New(testBase, mem)
				if err != nil {
					t.Fatal(err)
				}
				o := Run(Config{Scenario: sc, Region: r, In: in, Boots: 2, Out: &out, TSCHz: hz})
				if i == 0 {
					o.StampReboot()
				}
				in = o.Next
			}
			if log := out.String(); !strings.Contains(log, tt.want) {
				t.Errorf("KTAP lacks %q:\n%s", tt.want, log)
			}
		})
	}
}

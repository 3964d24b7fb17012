package inspect

import (
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kho-sim/kho-sim/pkg/physmem"
	"github.com/kho-sim/kho-sim/pkg/scenario"
	"github.com/kho-sim/kho-sim/pkg/sim"
)

// TestEveryScenarioHandoverIsClean decodes every handover that every
// built-in scenario writes in a 4-boot run: no false findings, and the
// metadata and the FLB table agree in size.
func TestEveryScenarioHandoverIsClean(t *testing.T) {
	all, err := scenario.Builtins()
	if err != nil {
		t.Fatal(err)
	}
	handovers := 0
	for _, sc := range all {
		path := filepath.Join(t.TempDir(), "mem")
		in := sim.Handover{Boot: 1}
		for range 4 {
			r, err := physmem.OpenFile(path, testBase, testSize)
			if err != nil {
				t.Fatal(err)
			}
			out := sim.Run(sim.Config{Region: r, Scenario: sc, In: in, Boots: 4, Out: io.Discard})
			if out.Next.RootPA != 0 {
				handovers++
				rep := Decode(r, out.Next.RootPA)
				switch {
				case sc.Flaw == scenario.FlawLongCompatible:
					// The flaw is exactly what inspect must find: the cut name.
					if len(rep.Findings) == 0 || !strings.Contains(rep.Findings[0].What+string(rep.Findings[0].Kernel), "state is lost") {
						t.Errorf("%s boot %d: findings %v, want the lost FLB", sc.Name, in.Boot, rep.Findings)
					}
				case len(rep.Findings) != 0:
					t.Errorf("%s boot %d: findings %v", sc.Name, in.Boot, rep.Findings)
				case rep.KHOSim == nil || rep.LUO == nil || rep.LUO.FLB == nil:
					t.Errorf("%s boot %d: parts missing: %+v", sc.Name, in.Boot, rep)
				case len(rep.KHOSim.FLBs) != len(rep.LUO.FLB.Entries):
					t.Errorf("%s boot %d: %d FLBs in the metadata, %d in the table", sc.Name, in.Boot, len(rep.KHOSim.FLBs), len(rep.LUO.FLB.Entries))
				}
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			if out.Last {
				break
			}
			in = out.Next
		}
	}
	if handovers < len(all) {
		t.Errorf("only %d handovers from %d scenarios", handovers, len(all))
	}
}

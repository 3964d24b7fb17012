package inspect

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kho-sim/kho-sim/internal/scenario"
	"github.com/kho-sim/kho-sim/internal/sim"
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// TestEveryScenarioHandoverIsClean decodes every handover that every
// built-in scenario writes in a 4-boot run, in every generation: no false
// findings, the generation recognised, and the metadata, the FLB table,
// the sessions and the kexec-metadata agree.
func TestEveryScenarioHandoverIsClean(t *testing.T) {
	all, err := scenario.Builtins()
	if err != nil {
		t.Fatal(err)
	}
	for _, abi := range kernel.Generations() {
		handovers := 0
		for _, sc := range all {
			t.Run(fmt.Sprintf("%s/%s", abi, sc.Name), func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "mem")
				in := sim.Handover{Boot: 1}
				for range 4 {
					r, err := physmem.OpenFile(path, testBase, testSize)
					if err != nil {
						t.Fatal(err)
					}
					out := sim.Run(sim.Config{Region: r, Scenario: sc, In: in, Boots: 4, Out: io.Discard, ABI: abi})
					if out.Next.RootPA != 0 {
						handovers++
						checkClean(t, sc, abi, in.Boot, Decode(r, out.Next.RootPA))
					}
					if err := r.Close(); err != nil {
						t.Fatal(err)
					}
					if out.Last {
						break
					}
					in = out.Next
				}
			})
		}
		if handovers < len(all) {
			t.Errorf("%s: only %d handovers from %d scenarios", abi, handovers, len(all))
		}
	}
}

func checkClean(t *testing.T, sc *scenario.Scenario, abi kernel.Generation, boot int, rep *Report) {
	t.Helper()
	if g := rep.Generation; g == nil || g.Name != string(abi) {
		t.Errorf("boot %d: generation %+v, want %s", boot, rep.Generation, abi)
	}
	if sc.Flaw == scenario.FlawLongCompatible {
		// The flaw is exactly what inspect must find: the cut name.
		if len(rep.Findings) == 0 || !strings.Contains(rep.Findings[0].What+rep.Findings[0].Kernel, "state is lost") {
			t.Errorf("boot %d: findings %v, want the lost FLB", boot, rep.Findings)
		}
		return
	}
	if len(rep.Findings) != 0 {
		t.Fatalf("boot %d: findings %v", boot, rep.Findings)
	}
	m, l := rep.KHOSim, rep.LUO
	if m == nil || l == nil || l.FLB == nil || rep.Memory == nil {
		t.Fatalf("boot %d: parts missing: %+v", boot, rep)
	}
	if len(m.FLBs) != len(l.FLB.Entries) {
		t.Errorf("boot %d: %d FLBs in the metadata, %d in the table", boot, len(m.FLBs), len(l.FLB.Entries))
	}
	files := 0
	if l.Sessions != nil {
		for _, s := range l.Sessions.Sessions {
			files += len(s.Files)
		}
	}
	if files != len(m.Files) {
		t.Errorf("boot %d: %d files in the sessions, %d in the metadata", boot, files, len(m.Files))
	}
	if k := rep.KexecMetadata; (k != nil) != (abi == kernel.V72) || (k != nil && uint64(k.KexecCount) != m.LUONumber) {
		t.Errorf("boot %d: kexec-metadata %+v, liveupdate number %d", boot, k, m.LUONumber)
	}
}

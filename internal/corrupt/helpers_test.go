package corrupt

import (
	"bytes"
	"fmt"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/kho-sim/kho-sim/internal/scenario"
	"github.com/kho-sim/kho-sim/internal/sim"
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/ktap"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

const (
	// testBase lies above 4 GiB so every address in the image has a
	// non-zero high half, which flb-header-size must cope with.
	testBase   = 0x1_0000_0000
	regionSize = 1 << 20
)

// handover is a real image: the first boot of a scenario run by internal/sim.
type handover struct {
	sc   *scenario.Scenario
	abi  kernel.Generation
	mem  []byte // the region's bytes after the first boot
	next sim.Handover
	ktap string // the first boot's KTAP
}

func newHandover(t testing.TB, name string) *handover {
	t.Helper()
	return newHandoverABI(t, name, "")
}

// newHandoverABI is newHandover for a kernel generation ("" is 7.0).
func newHandoverABI(t testing.TB, name string, abi kernel.Generation) *handover {
	t.Helper()
	sc, err := scenario.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	mem := make([]byte, regionSize)
	r := region(t, mem)
	var out bytes.Buffer
	o := sim.Run(sim.Config{Region: r, Scenario: sc, ABI: abi, In: sim.Handover{Boot: 1}, Boots: 2, Out: &out})
	if !o.OK || o.Next.RootPA == 0 {
		t.Fatalf("first boot of %s did not hand over:\n%s", name, out.String())
	}
	return &handover{sc: sc, abi: abi, mem: mem, next: o.Next, ktap: out.String()}
}

func region(t testing.TB, mem []byte) *physmem.Region {
	t.Helper()
	r, err := physmem.New(testBase, mem)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// clone gives a fresh copy of the image to damage.
func (h *handover) clone() []byte { return bytes.Clone(h.mem) }

// nextBoot runs the boot that receives the image in mem and returns its
// verdict and KTAP; a panic is reported as an error with its stack.
func (h *handover) nextBoot(t testing.TB, mem []byte) (ok bool, ktap string, err error) {
	t.Helper()
	var out bytes.Buffer
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("next boot panicked: %v\n%s", p, debug.Stack())
		}
	}()
	o := sim.Run(sim.Config{Region: region(t, mem), Scenario: h.sc, ABI: h.abi, In: h.next, Boots: 2, Out: &out, RAM: testRAM()})
	return o.OK, out.String(), nil
}

// testRAM is the next kernel's RAM in these tests: the region and the
// 4 GiB below it, and as much above, so that a pointer out of the region
// may land in RAM or, with a high bit flipped, beyond it.
func testRAM() kho.NextRAM { return kho.NextRAM{{Start: 0, Size: 2 * testBase}} }

// validKTAP checks the whole run, first boot and next, is valid KTAP and
// returns the problems found ("" for none).
func validKTAP(h *handover, next string) string {
	var out []string
	for _, p := range ktap.Validate(strings.NewReader(h.ktap + next)) {
		out = append(out, p.String())
	}
	return strings.Join(out, "; ")
}

package inspect

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/kho-sim/kho-sim/internal/realhandover"
	"github.com/kho-sim/kho-sim/internal/scenario"
	"github.com/kho-sim/kho-sim/internal/sim"
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

const (
	testBase = 0x10000000
	testSize = 16 << 20
)

// simImage runs boot 1 of the scenario on a file region and returns the
// file and the KHO root address it handed over.
func simImage(t testing.TB, name string, boots int) (string, uint64) {
	t.Helper()
	return simImageABI(t, name, boots, kernel.V70)
}

// simImageABI is simImage in the given generation.
func simImageABI(t testing.TB, name string, boots int, abi kernel.Generation) (string, uint64) {
	t.Helper()
	sc, err := scenario.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "mem")
	r, err := physmem.OpenFile(path, testBase, testSize)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	out := sim.Run(sim.Config{Region: r, Scenario: sc, In: sim.Handover{Boot: 1}, Boots: boots, Out: io.Discard, ABI: abi})
	if out.Next.RootPA == 0 {
		t.Fatalf("scenario %s (%s) boot 1 handed nothing over (OK %v)", name, abi, out.OK)
	}
	return path, out.Next.RootPA
}

// openImage maps an image file as the test region.
func openImage(t testing.TB, path string) *physmem.Region {
	t.Helper()
	r, err := physmem.OpenFile(path, testBase, testSize)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// readFile returns the image's bytes, for damage on a private copy.
func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// realRegion loads a dump of the real 7.2 handover (internal/realhandover)
// into a sparse region at physical address 0 that covers every page the
// handover's memory map preserves, and returns it with the root FDT's
// address.
func realRegion(t testing.TB, name string) (*physmem.Region, uint64) {
	t.Helper()
	full := realhandover.Load(t, realhandover.Handover)
	d := full
	if name != realhandover.Handover {
		d = realhandover.Load(t, name)
	}
	return realhandover.Region(t, full, d), d.Setup.FDTAddr
}

package inspect

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/kho-sim/kho-sim/pkg/gen72"
	"github.com/kho-sim/kho-sim/pkg/physmem"
	"github.com/kho-sim/kho-sim/pkg/scenario"
	"github.com/kho-sim/kho-sim/pkg/sim"
)

const (
	testBase = 0x10000000
	testSize = 16 << 20
)

// simImage runs boot 1 of the scenario on a file region and returns the
// file and the KHO root address it handed over.
func simImage(t testing.TB, name string, boots int) (string, uint64) {
	t.Helper()
	return simImageABI(t, name, boots, sim.ABI70)
}

// simImageABI is simImage in the given generation.
func simImageABI(t testing.TB, name string, boots int, abi sim.ABI) (string, uint64) {
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

// realDir holds pages captured from a real Linux 7.2 kernel's handover
// (see pkg/gen72's real_test.go): handover.txt as it was at the kexec,
// guest-dump.txt as the next kernel's /dev/mem showed it after boot.
const realDir = "../gen72/testdata/real-7.2"

// realRegion loads a dump of the real 7.2 handover into a sparse file
// region at physical address 0 that covers every page the handover's
// memory map preserves and every structure it uses (the memfds' folios lie
// hundreds of MiB up; only the dumped pages hold data). It returns the
// region and the root FDT's address.
func realRegion(t testing.TB, name string) (*physmem.Region, uint64) {
	t.Helper()
	full := loadDump(t, "handover.txt")
	h, err := gen72.Decode(full.Pages, full.Setup.FDTAddr, full.Setup.FDTSize)
	if err != nil {
		t.Fatal(err)
	}
	var end uint64
	for _, b := range h.MemoryMap.Blocks {
		end = max(end, b.End())
	}
	for _, pa := range h.Pages() {
		end = max(end, pa+gen72.PageSize)
	}
	end = (end + 1<<20 - 1) &^ (1<<20 - 1)
	r, err := physmem.OpenFile(filepath.Join(t.TempDir(), "mem"), 0, end)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	d := full
	if name != "handover.txt" {
		d = loadDump(t, name)
	}
	for _, pa := range d.Pages.Addresses() {
		if pa >= end {
			continue // the scratch array: not part of what KHO hands over
		}
		mem, err := r.Bytes(pa, gen72.PageSize)
		if err != nil {
			t.Fatal(err)
		}
		copy(mem, d.Pages.Page(pa))
	}
	return r, d.Setup.FDTAddr
}

func loadDump(t testing.TB, name string) *gen72.Dump {
	t.Helper()
	f, err := os.Open(filepath.Join(realDir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := gen72.ParseDump(f)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if d.Setup == nil {
		t.Fatalf("%s: no KHOSETUP line", name)
	}
	return d
}

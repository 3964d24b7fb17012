// Package realhandover loads the handovers a real Linux 7.2 kernel left in
// memory, captured by scripts/luo-kernel/capture.sh into testdata/real-7.2
// at the repository's root, for the tests of every package that reads
// them: handover.txt holds the pages as they were at the kexec,
// guest-dump.txt what the next kernel's /dev/mem still showed after boot.
// Both are in pkg/kho's dump format.
package realhandover

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// The captured dumps.
const (
	Handover  = "handover.txt"
	GuestDump = "guest-dump.txt"
)

// Env names a dump to use instead of the committed handover.txt:
// e2e/realkernel points it at what its guest has just read from a freshly
// built kernel.
const Env = "KHO_SIM_REAL_HANDOVER"

// Dir is testdata/real-7.2 of the repository.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "real-7.2")
}

// Load parses the captured dump name, failing the test on error or when
// it has no KHOSETUP line.
func Load(t testing.TB, name string) *kho.Dump {
	t.Helper()
	return LoadFile(t, filepath.Join(Dir(), name))
}

// LoadEnv is Load of handover.txt, or of the dump Env names.
func LoadEnv(t testing.TB) *kho.Dump {
	t.Helper()
	if p := os.Getenv(Env); p != "" {
		return LoadFile(t, p)
	}
	return Load(t, Handover)
}

// LoadFile parses the dump at path.
func LoadFile(t testing.TB, path string) *kho.Dump {
	t.Helper()
	d, err := kho.ReadDumpFile(path)
	if err != nil {
		t.Fatalf("captured handover: %v", err)
	}
	if d.Setup == nil {
		t.Fatalf("%s: no KHOSETUP line", path)
	}
	return d
}

// End is the first address past the handover of the full dump: past every
// block its memory map preserves and every radix node, rounded up to a
// MiB. The scratch array's page lies beyond; it is not part of what KHO
// hands over.
func End(t testing.TB, full *kho.Dump) uint64 {
	t.Helper()
	in, err := kho.ReadIncoming(full.Pages, full.Setup.FDTAddr)
	if err != nil {
		t.Fatalf("read the captured handover: %v", err)
	}
	mapPA, _ := in.Root().Root.U64(kho.PropMemoryMap)
	m, err := kho.ReadRadix(full.Pages, mapPA)
	if err != nil {
		t.Fatalf("read the captured radix tree: %v", err)
	}
	var end uint64
	for _, b := range m.Blocks {
		end = max(end, b.End())
	}
	for _, pa := range m.Nodes {
		end = max(end, pa+physmem.PageSize)
	}
	return (end + 1<<20 - 1) &^ (1<<20 - 1)
}

// Region copies the pages of d below the full handover's End into a
// contiguous region from physical address 0, as a RAM image of the machine
// would hold them (the memfds' folios lie hundreds of MiB up; only the
// dumped pages hold data, the rest is a sparse file). full is the dump
// whose memory map sizes the region, usually d itself.
func Region(t testing.TB, full, d *kho.Dump) *physmem.Region {
	t.Helper()
	return regionFile(t, full, d, filepath.Join(t.TempDir(), "mem"))
}

// Image is Region of handover.txt as a file, for commands that read a raw
// memory image whose byte 0 is physical address 0; it returns the file and
// the root FDT's address.
func Image(t testing.TB) (string, uint64) {
	t.Helper()
	d := Load(t, Handover)
	path := filepath.Join(t.TempDir(), "real-7.2.mem")
	regionFile(t, d, d, path)
	return path, d.Setup.FDTAddr
}

func regionFile(t testing.TB, full, d *kho.Dump, path string) *physmem.Region {
	t.Helper()
	end := End(t, full)
	r, err := physmem.OpenFile(path, 0, end)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	for _, pa := range d.Pages.Addresses() {
		if pa >= end {
			continue
		}
		mem, err := r.Bytes(pa, physmem.PageSize)
		if err != nil {
			t.Fatal(err)
		}
		copy(mem, d.Pages.Page(pa))
	}
	return r
}

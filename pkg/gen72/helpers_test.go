package gen72

import (
	"os"
	"path/filepath"
	"testing"
)

const realDir = "testdata/real-7.2"

// loadDump parses a dump file of testdata/real-7.2.
func loadDump(t testing.TB, name string) *Dump {
	t.Helper()
	f, err := os.Open(filepath.Join(realDir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := ParseDump(f)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if d.Setup == nil {
		t.Fatalf("%s: no KHOSETUP line", name)
	}
	return d
}

// realHandover decodes the captured handover, failing the test on error.
func realHandover(t testing.TB) (*Dump, *Handover) {
	t.Helper()
	d := loadDump(t, "handover.txt")
	h, err := Decode(d.Pages, d.Setup.FDTAddr, d.Setup.FDTSize)
	if err != nil {
		t.Fatalf("decode the real handover: %v", err)
	}
	return d, h
}

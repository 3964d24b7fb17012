package gen72

import (
	"testing"

	"github.com/kho-sim/kho-sim/internal/realhandover"
	"github.com/kho-sim/kho-sim/pkg/kho"
)

// loadDump parses a dump file of testdata/real-7.2.
func loadDump(t testing.TB, name string) *kho.Dump { return realhandover.Load(t, name) }

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

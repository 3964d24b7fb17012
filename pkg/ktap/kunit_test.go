package ktap_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kho-sim/kho-sim/internal/kunit"
	"github.com/kho-sim/kho-sim/pkg/ktap"
)

// boots prints what kho-sim prints for a short chain: a top-level plan,
// one subtest per boot closed by a result named like it, a boot that never
// ran as a SKIP.
func boots(w *ktap.Writer) {
	w.Header(3)
	b1 := w.Subtest("boot-1 cold boot")
	b1.Result(true, "KHO set up", ktap.Directive{})
	b1.Diag("phase steps 1.0 ms")
	b1.Result(true, "finish exactly once", ktap.Directive{Kind: ktap.DirXFail, Reason: "known 7.0 flaw"})
	w.Result(true, "boot-1 cold boot", ktap.Directive{})
	b2 := w.Subtest("boot-2 hop 1")
	b2.Result(false, "payload matches", ktap.Directive{})
	b2.Diag("CRC32C differs")
	b2.Result(true, "next kernel loaded", ktap.Skip("dry run"))
	w.Result(false, "boot-2 hop 1", ktap.Directive{})
	w.Result(true, "boot-3", ktap.Skip("no boot: the run stopped at boot 2"))
	w.Totals()
}

// TestValidateAgreesWithKunit takes the kernel's own parser as the ground
// truth for the rules Validate shares with it: where the plan goes, the
// numbering, the result that closes a subtest. Validate is stricter in
// places kunit.py tolerates (a subtest without a plan): those cases say so.
func TestValidateAgreesWithKunit(t *testing.T) {
	var out strings.Builder
	boots(ktap.NewWriter(&out))
	tests := []struct {
		name       string
		in         string
		valid      bool // Validate finds nothing
		kunitClean bool // kunit.py finds no errors and no crashed tests
	}{
		{"writer output", out.String(), true, true},
		{"subtest plan after its results", "KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: s\n    ok 1 a\n    ok 2 b\n    1..2\nok 1 s\n", false, false},
		{"top-level plan after the results", "KTAP version 1\nok 1 a\nok 2 b\n1..2\n", false, false},
		{"subtest closed by another name", "KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: boot-1 cold\n    1..1\n    ok 1 a\nok 1 boot-1\n", false, false},
		{"numbering gap", "KTAP version 1\n1..2\nok 1 a\nok 3 b\n", false, false},
		{"planned result missing", "KTAP version 1\n1..2\nok 1 a\n", false, false},
		{"subtest without a plan: kunit.py tolerates it", "KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: s\n    ok 1 a\nok 1 s\n", false, true},
	}
	k := kunit.Require(t)
	dir := t.TempDir()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if probs := ktap.Validate(strings.NewReader(tt.in)); (probs == nil) != tt.valid {
				t.Errorf("Validate = %v, want valid %v", probs, tt.valid)
			}
			p := filepath.Join(dir, strings.Repeat("k", i+1)+".log")
			if err := os.WriteFile(p, []byte(tt.in), 0o644); err != nil {
				t.Fatal(err)
			}
			got, out, err := kunit.Parse(k, p)
			if err != nil {
				t.Fatal(err)
			}
			if clean := got.Errors == 0 && got.Crashed == 0; clean != tt.kunitClean {
				t.Errorf("kunit.py: %v, want clean %v\n%s", got, tt.kunitClean, out)
			}
			if tt.kunitClean {
				rep, err := ktap.Parse(strings.NewReader(tt.in))
				if err != nil {
					t.Fatal(err)
				}
				if err := kunit.Compare(got, kunit.Expect(rep)); err != nil {
					t.Errorf("kunit.py and ktap.Parse disagree: %v\n%s", err, out)
				}
			}
		})
	}
}

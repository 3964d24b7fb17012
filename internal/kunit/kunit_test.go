package kunit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kho-sim/kho-sim/pkg/ktap"
)

func TestParseSummary(t *testing.T) {
	tests := []struct {
		name, out string
		want      Counts
		err       string
	}{
		{name: "late plans", out: "[07:21:48] ====\n[07:21:48] Testing complete. Ran 46 tests: passed: 44, crashed: 2, errors: 8\n",
			want: Counts{Passed: 44, Crashed: 2, Errors: 8}},
		{name: "every kind", out: "Testing complete. Ran 13 tests: passed: 9, failed: 2, crashed: 1, skipped: 1, errors: 4",
			want: Counts{Passed: 9, Failed: 2, Crashed: 1, Skipped: 1, Errors: 4}},
		{name: "clean", out: "[07:27:59] Testing complete. Ran 39 tests: passed: 39\n", want: Counts{Passed: 39}},
		{name: "nothing ran", out: "[07:27:59] Testing complete. Ran 0 tests: errors: 1\n", want: Counts{Errors: 1}},
		{name: "the last summary counts", out: "Testing complete. Ran 1 tests: passed: 1\nTesting complete. Ran 2 tests: failed: 2\n",
			want: Counts{Failed: 2}},
		{name: "no summary", out: "Traceback (most recent call last):\n", err: "no \"Testing complete"},
		{name: "counts do not add up", out: "Testing complete. Ran 5 tests: passed: 4", err: "do not add up"},
		{name: "unknown count", out: "Testing complete. Ran 1 tests: passed: 1, lost: 1", err: "unknown count \"lost\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSummary(tt.out)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseSummary = %v, %v; want an error saying %q", got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseSummary = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// streams are KTAP shapes kho-sim prints, each with the counts kunit.py
// gives it (checked against kunit.py itself by TestExpectMatchesKunit).
var streams = []struct {
	name, ktap string
	want       Counts
}{
	{"flat with skip and xfail", "KTAP version 1\n1..4\nok 1 a\nnot ok 2 b\nok 3 c # SKIP why\nok 4 d # XFAIL known\n",
		Counts{Passed: 2, Failed: 1, Skipped: 1}},
	{"boots", "KTAP version 1\n1..3\n" +
		"    KTAP version 1\n    # Subtest: boot-1 cold\n    1..2\n    ok 1 x\n    # phase steps 1 ms\n    ok 2 y\nok 1 boot-1 cold\n" +
		"[    5.2] kexec_core: Starting new kernel\n" +
		"    KTAP version 1\n    # Subtest: boot-2 hop 1\n    1..2\n    ok 1 x\n    not ok 2 y\n    # reason\nnot ok 2 boot-2 hop 1\n" +
		"ok 3 boot-3 # SKIP no boot: the run stopped at boot 2\n# Totals: pass:1 fail:1 xfail:0 xpass:0 skip:1 error:0\n# kho-sim: done\n",
		Counts{Passed: 3, Failed: 1, Skipped: 1}},
	{"parent fails over passing subtests", "KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: s\n    1..1\n    ok 1 x\nnot ok 1 s\n",
		Counts{Passed: 1, Failed: 1}},
	{"skipped subtest results", "KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: s\n    1..2\n    ok 1 x # SKIP a\n    ok 2 y # SKIP b\nok 1 s\n",
		Counts{Skipped: 2}},
	{"boot that died", "KTAP version 1\n1..2\n    KTAP version 1\n    # Subtest: boot-1\n    1..1\n    ok 1 x\nok 1 boot-1\n[ 9.9] Kernel panic\n",
		Counts{Passed: 1, Crashed: 1, Errors: 1}},
}

func TestExpect(t *testing.T) {
	for _, s := range streams {
		t.Run(s.name, func(t *testing.T) {
			rep, err := ktap.Parse(strings.NewReader(s.ktap))
			if err != nil {
				t.Fatal(err)
			}
			want := s.want
			want.Errors = 0 // kho-sim's reading has no parser errors
			if got := Expect(rep); got != want {
				t.Errorf("Expect = %v, want %v", got, want)
			}
		})
	}
}

// TestExpectMatchesKunit takes kunit.py's own summary as the ground truth
// for the counts in streams.
func TestExpectMatchesKunit(t *testing.T) {
	k := Require(t)
	dir := t.TempDir()
	for i, s := range streams {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			p := filepath.Join(dir, strings.Repeat("x", i+1)+".log")
			if err := os.WriteFile(p, []byte(s.ktap), 0o644); err != nil {
				t.Fatal(err)
			}
			got, out, err := Parse(k, p)
			if err != nil {
				t.Fatal(err)
			}
			if got != s.want {
				t.Errorf("kunit.py: %v, want %v\n%s", got, s.want, out)
			}
			rep, err := ktap.Parse(strings.NewReader(s.ktap))
			if err != nil {
				t.Fatal(err)
			}
			err = Compare(got, Expect(rep))
			if clean := s.want.Errors == 0 && s.want.Crashed == 0; (err == nil) != clean {
				t.Errorf("Compare = %v, want an error: %v", err, !clean)
			}
		})
	}
}

func TestCompare(t *testing.T) {
	same := Counts{Passed: 3, Failed: 1, Skipped: 1}
	tests := []struct {
		name      string
		got, want Counts
		err       string
	}{
		{"agree", same, same, ""},
		{"errors", Counts{Passed: 3, Failed: 1, Skipped: 1, Errors: 2}, same, "2 errors and 0 crashed"},
		{"crashed", Counts{Passed: 3, Failed: 1, Skipped: 1, Crashed: 1}, same, "0 errors and 1 crashed"},
		{"passed differ", Counts{Passed: 2, Failed: 1, Skipped: 1}, same, "passed 2, failed 1, skipped 1; kho-sim reads passed 3"},
		{"skip read as pass", Counts{Passed: 4, Failed: 1}, same, "kho-sim reads passed 3, failed 1, skipped 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Compare(tt.got, tt.want)
			if (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
				t.Errorf("Compare = %v, want %q", err, tt.err)
			}
		})
	}
}

func TestPath(t *testing.T) {
	t.Setenv(EnvKunit, "")
	if _, err := Path(); err == nil || !strings.Contains(err.Error(), "not set") {
		t.Errorf("Path() with %s unset: %v, want an error", EnvKunit, err)
	}
	t.Setenv(EnvKunit, filepath.Join(t.TempDir(), "absent.py"))
	if _, err := Path(); err == nil {
		t.Error("Path() with a missing file: no error")
	}
}

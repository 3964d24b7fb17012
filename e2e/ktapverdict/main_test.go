package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kho-sim/kho-sim/internal/kunit"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good, err := os.ReadFile("../testdata/qemu-3boots.log")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		path     string
		boots    int
		wantCode int
		wantOut  string
	}{
		{"pass", write("good.log", string(good)), 3, 0, "PASS: 3 boots"},
		{"too few boots", write("good2.log", string(good)), 5, 1, "3 boots reported, want 5"},
		{"failed hop", write("bad.log", strings.Replace(string(good), "\nok 2 boot-2", "\nnot ok 2 boot-2", 1)), 3, 1, "FAIL 2 boot-2 hop 1"},
		{"no KTAP", write("empty.log", "guest printed nothing\n"), 3, 1, "FAIL: "},
		{"missing file", filepath.Join(dir, "absent.log"), 3, 2, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			if got := run(tt.path, tt.boots, &out); got != tt.wantCode {
				t.Errorf("run = %d, want %d; output:\n%s", got, tt.wantCode, out.String())
			}
			if !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("output lacks %q:\n%s", tt.wantOut, out.String())
			}
		})
	}
}

func TestRunKunit(t *testing.T) {
	k := kunit.Require(t)
	dir := t.TempDir()
	late := filepath.Join(dir, "late.log")
	// kho-sim's old output: each boot's plan after its results.
	if err := os.WriteFile(late, []byte("KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: boot-1 cold\n"+
		"    ok 1 a\n    ok 2 b\n    1..2\nok 1 boot-1 cold\n# kho-sim: done\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		logs     []string
		wantCode int
		wantOut  []string
	}{
		{"passing and failing runs", []string{"../testdata/qemu-3boots.log", "../testdata/qemu-corrupt-payload-bitflip.log"}, 0, []string{
			"ok ../testdata/qemu-3boots.log: kunit.py: Ran 41 tests: passed: 41, failed: 0, crashed: 0",
			"ok ../testdata/qemu-corrupt-payload-bitflip.log: kunit.py: Ran 26 tests: passed: 21, failed: 5, crashed: 0",
		}},
		{"plan after results", []string{late, "../testdata/qemu-kexec-fails.log"}, 1, []string{
			"FAIL " + late + ": kunit: " + late + ": kunit.py found",
			"ok ../testdata/qemu-kexec-fails.log: kunit.py: Ran 11 tests: passed: 10, failed: 0, crashed: 0, skipped: 1",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			if got := runKunit(k, tt.logs, &out); got != tt.wantCode {
				t.Errorf("runKunit = %d, want %d; output:\n%s", got, tt.wantCode, out.String())
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

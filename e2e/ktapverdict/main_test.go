package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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

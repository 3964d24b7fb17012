package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kho-sim/kho-sim/internal/kunit"
)

// TestKunitParsesEveryCommand feeds the KTAP of each command that prints
// it to the kernel's own parser (tools/testing/kunit/kunit.py): no errors,
// no crashed tests, the same passed, failed and skipped cases as kho-sim
// reads; passing and failing runs alike.
func TestKunitParsesEveryCommand(t *testing.T) {
	k := kunit.Require(t)
	dir := t.TempDir()
	tests := []struct {
		name string
		args func(t *testing.T) []string
	}{
		{"sim", func(t *testing.T) []string { return []string{"sim", "--image", filepath.Join(t.TempDir(), "mem")} }},
		{"sim corrupt", func(t *testing.T) []string {
			return []string{"sim", "--image", filepath.Join(t.TempDir(), "mem"), "--corrupt", "flb-count-max"}
		}},
		{"sim kexec-fails", func(t *testing.T) []string {
			return []string{"sim", "--image", filepath.Join(t.TempDir(), "mem"), "--scenario", "kexec-fails"}
		}},
		{"sim 7.2", func(t *testing.T) []string {
			return []string{"sim", "--image", filepath.Join(t.TempDir(), "mem"), "--abi", "7.2"}
		}},
		{"preflight", func(t *testing.T) []string { return []string{"preflight"} }},
		{"abi check", func(t *testing.T) []string {
			requireTool(t, "gcc", "--version")
			requireTool(t, "pahole", "--version")
			b, err := os.ReadFile("../../pkg/abi/testdata/luo_abi.h")
			if err != nil {
				t.Fatal(err)
			}
			return []string{"abi", "check", "--btf", paholeObject(t, string(b))}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, out, _ := run(tt.args(t)...)
			if !strings.HasPrefix(out, "KTAP version 1\n") {
				t.Fatalf("no KTAP on stdout:\n%s", out)
			}
			p := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".log")
			if err := os.WriteFile(p, []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := kunit.Check(k, p)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("kunit.py: %s", c)
		})
	}
}

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kho-sim/kho-sim/pkg/ktap"
)

func run(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = mainWithArgs(args, &o, &e)
	return code, o.String(), e.String()
}

func TestSimDefaultPasses(t *testing.T) {
	img := filepath.Join(t.TempDir(), "mem")
	code, out, errs := run("sim", "--image", img, "--hops", "2")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	rep, err := ktap.Parse(strings.NewReader(out))
	if err != nil || !rep.Passed() || len(rep.Results) != 3 {
		t.Fatalf("KTAP: %v\n%s", err, out)
	}
}

func TestSimList(t *testing.T) {
	code, out, _ := run("sim", "--list")
	for _, name := range []string{"default", "sharing", "abort", "rollback", "registration-limits", "finish-before-retrieve"} {
		if !strings.Contains(out, name+" ") {
			t.Errorf("--list lacks %s:\n%s", name, out)
		}
	}
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// TestSimBadInput: each mistake gives one clear line on stderr and a
// non-zero exit, never a Go panic or stack trace.
func TestSimBadInput(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "mem")
	garbage := filepath.Join(dir, "garbage.yaml")
	os.WriteFile(garbage, []byte("name: x\nboots:\n  - steps: [fly]\n"), 0o644)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown scenario", []string{"sim", "--image", img, "--scenario", "nope"}, 2, `unknown scenario "nope"`},
		{"scenario file error", []string{"sim", "--image", img, "--scenario", garbage}, 2, "garbage.yaml:3: unknown operation"},
		{"missing scenario file", []string{"sim", "--image", img, "--scenario", "./missing.yaml"}, 2, "no such file"},
		{"no image", []string{"sim"}, 2, "--image FILE is required"},
		{"unaligned base", []string{"sim", "--image", img, "--base", "0x10000001"}, 2, "page aligned"},
		{"unaligned size", []string{"sim", "--image", img, "--size", "5000"}, 2, "page aligned"},
		{"too small", []string{"sim", "--image", img, "--size", "64K"}, 2, "at least 1 MiB"},
		{"bad size", []string{"sim", "--image", img, "--size", "lots"}, 2, "--size"},
		{"bad hops", []string{"sim", "--image", img, "--hops", "-3"}, 2, "--hops"},
		{"stray argument", []string{"sim", "--image", img, "extra"}, 2, `unexpected argument "extra"`},
		{"unknown flag", []string{"sim", "--frobnicate"}, 2, "flag provided but not defined"},
		{"unknown command", []string{"fly"}, 2, `unknown command "fly"`},
		{"image is a directory", []string{"sim", "--image", dir}, 1, "is a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errs := run(tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.code, errs)
			}
			if !strings.Contains(errs, tt.want) {
				t.Errorf("stderr %q lacks %q", errs, tt.want)
			}
			if strings.Contains(errs, "goroutine ") || strings.Contains(errs, "panic") {
				t.Errorf("stack trace on stderr: %s", errs)
			}
		})
	}
}

// TestSimGarbageImage: resuming from an image full of garbage reports the
// bad handover in KTAP and one line on stderr, never a crash.
func TestSimGarbageImage(t *testing.T) {
	img := filepath.Join(t.TempDir(), "mem")
	junk := bytes.Repeat([]byte("kho-sim garbage "), (16<<20)/16)
	if err := os.WriteFile(img, junk, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := run("sim", "--image", img, "--fdt", "0x10000000", "--boot", "2", "--hops", "2")
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", code, out, errs)
	}
	if !strings.Contains(out, "not ok 1 KHO root FDT and preserved-memory map are valid") || !strings.Contains(out, "bad magic") {
		t.Fatalf("KTAP does not say what is wrong:\n%s", out)
	}
	if n := strings.Count(strings.TrimSpace(errs), "\n"); n != 0 || !strings.Contains(errs, "1 boot(s) failed") {
		t.Fatalf("stderr %q, want one line", errs)
	}
}

// TestRunRefusesUnreservedRegion: on a machine where the region is not
// reserved, run refuses before touching memory and says what to add.
func TestRunRefusesUnreservedRegion(t *testing.T) {
	cmdline := writeFile(t, "console=ttyS0 kho_sim.hops=1")
	code, _, errs := run("run", "--cmdline-file", cmdline, "--region", "16M@0x10000000", "--dry-run")
	if code == 0 {
		t.Fatal("run succeeded on an unreserved region")
	}
	if !strings.Contains(errs, "memmap=") && !strings.Contains(errs, "root") {
		t.Fatalf("stderr %q does not say what to fix", errs)
	}
}

// TestRunWithoutRegion: no memmap= and no --region is a usage error that
// names the fix.
func TestRunWithoutRegion(t *testing.T) {
	code, _, errs := run("run", "--cmdline-file", writeFile(t, "console=ttyS0"), "--dry-run")
	if code != 2 || !strings.Contains(errs, "memmap=16M$0x10000000") {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
}

// TestRunRefusesToKexecOutsideItsInitramfs: a kexec needs kho-sim's own
// initramfs, --allow-kexec or --dry-run.
func TestRunRefusesToKexecOutsideItsInitramfs(t *testing.T) {
	code, _, errs := run("run", "--cmdline-file", writeFile(t, "memmap=16M$0x10000000 kho_sim.hops=1"))
	if code != 2 || !strings.Contains(errs, "refusing to kexec") {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
}

func writeFile(t *testing.T, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHelp(t *testing.T) {
	for _, c := range commands() {
		if code, _, errs := run(c.name, "--help"); code != 0 || !strings.Contains(errs, "usage: kho-sim "+c.name) {
			t.Errorf("%s --help: exit %d, stderr %q", c.name, code, errs)
		}
	}
}

// TestREADMEListsEverything keeps the README's tables in step with the
// built-in scenarios and corruption kinds.
func TestREADMEListsEverything(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, list, _ := run("sim", "--list")
	_, kinds, _ := run("sim", "--corrupt", "list")
	for _, line := range strings.Split(strings.TrimSpace(list+kinds), "\n") {
		name := strings.Fields(line)[0]
		if !strings.Contains(string(readme), "| `"+name+"` |") {
			t.Errorf("README lacks a row for %q", name)
		}
	}
}

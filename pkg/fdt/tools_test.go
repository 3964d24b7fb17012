package fdt

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// dtcDecompile runs `dtc -I dtb -O dts` on blob and returns its output.
func dtcDecompile(t *testing.T, blob []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "in.dtb")
	if err := os.WriteFile(path, blob, 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command("dtc", "-I", "dtb", "-O", "dts", path)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("dtc -I dtb -O dts: %v: %s", err, stderr.Bytes())
	}
	return string(out)
}

func formatString(t *testing.T, tree *Tree) string {
	t.Helper()
	var buf strings.Builder
	if err := Format(&buf, tree); err != nil {
		t.Fatalf("Format: %v", err)
	}
	return buf.String()
}

// TestWrittenBlobsPassTools feeds Builder output to dtc and to libfdt's
// fdt_check_full, and checks Format prints what dtc prints.
func TestWrittenBlobsPassTools(t *testing.T) {
	requireDtc(t)
	requireLibfdt(t)
	const checkFull = `import libfdt, sys
b = bytearray(sys.stdin.buffer.read())
err = libfdt.fdt_check_full(b, len(b))
if err:
    sys.exit("fdt_check_full: %s" % libfdt.fdt_strerror(err))`
	for name, tree := range testTrees() {
		t.Run(name, func(t *testing.T) {
			blob, err := build(tree, 0)
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(python, "-c", checkFull)
			cmd.Stdin = bytes.NewReader(blob)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("libfdt rejects the blob: %v: %s", err, out)
			}
			parsed, err := Parse(blob)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := formatString(t, parsed), dtcDecompile(t, blob); got != want {
				t.Errorf("Format differs from dtc:\n--- got\n%s--- dtc\n%s", got, want)
			}
		})
	}
}

// TestParseDtcBlobs reads blobs dtc compiles from testdata, in the layouts
// dtc can produce (version 16, padding, extra reservation slots, boot CPU).
func TestParseDtcBlobs(t *testing.T) {
	requireDtc(t)
	variants := []struct {
		name    string
		args    []string
		version uint32
		cpu     uint32
	}{
		{"default", nil, 17, 0},
		{"version 16", []string{"-V", "16"}, 16, 0},
		{"padded", []string{"-p", "64", "-R", "2", "-b", "3"}, 17, 3},
		{"aligned", []string{"-a", "64"}, 17, 0},
	}
	checks := map[string]func(t *testing.T, tree *Tree){
		"luo.dts": func(t *testing.T, tree *Tree) {
			if v, err := tree.Lookup("/luo-flb").U64("luo-flb-header"); err != nil || v != 0x5678000 {
				t.Errorf("luo-flb-header = %#x, %v", v, err)
			}
			if !tree.Lookup("/luo-session").IsCompatible("luo-session-v2") {
				t.Error("luo-session not compatible with luo-session-v2")
			}
		},
		"board.dts": func(t *testing.T, tree *Tree) {
			want := []Reservation{{0x10000000, 0x4000}, {0xfffff000, 0x1000}}
			if len(tree.Reserved) != 2 || tree.Reserved[0] != want[0] || tree.Reserved[1] != want[1] {
				t.Errorf("reservations %v, want %v", tree.Reserved, want)
			}
			if s, err := tree.Lookup("/chosen").String("bootargs"); err != nil || !strings.HasPrefix(s, "console=ttyS0") {
				t.Errorf("bootargs %q, %v", s, err)
			}
			if !tree.Root.IsCompatible("simple-bus") {
				t.Error("root not compatible with simple-bus")
			}
		},
	}
	for file, check := range checks {
		for _, v := range variants {
			t.Run(file+"/"+v.name, func(t *testing.T) {
				args := append([]string{"-I", "dts", "-O", "dtb", "-q"}, v.args...)
				var stderr bytes.Buffer
				cmd := exec.Command("dtc", append(args, filepath.Join("testdata", file))...)
				cmd.Stderr = &stderr
				blob, err := cmd.Output()
				if err != nil {
					t.Fatalf("dtc: %v: %s", err, stderr.Bytes())
				}
				tree, err := Parse(blob)
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if tree.Version != v.version || tree.BootCPUID != v.cpu {
					t.Errorf("version %d, boot cpu %d; want %d, %d", tree.Version, tree.BootCPUID, v.version, v.cpu)
				}
				check(t, tree)
				if got, want := formatString(t, tree), dtcDecompile(t, blob); got != want {
					t.Errorf("Format differs from dtc:\n--- got\n%s--- dtc\n%s", got, want)
				}
			})
		}
	}
}

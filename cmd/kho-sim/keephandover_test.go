package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/kho-sim/kho-sim/pkg/inspect"
	"github.com/kho-sim/kho-sim/pkg/kernel"
)

// python is Debian's interpreter, the one python3-libfdt is installed for.
const python = "/usr/bin/python3"

// keptHandover runs sim --keep-handover and returns the image and the
// kho_sim.fdt= address the last boot printed.
func keptHandover(t *testing.T, abi kernel.Generation, scenario string, hops int) (string, uint64) {
	t.Helper()
	img := filepath.Join(t.TempDir(), "mem")
	code, out, errs := runCLI("sim", "--image", img, "--scenario", scenario, "--hops", strconv.Itoa(hops), "--abi", string(abi), "--keep-handover")
	if code != 0 {
		t.Fatalf("sim --keep-handover: exit %d: %s\n%s", code, errs, out)
	}
	m := regexp.MustCompile(`(?m)^    # handover: kho_sim\.fdt=(0x[0-9a-f]+) for boot (\d+)$`).FindAllStringSubmatch(out, -1)
	if len(m) != hops+1 {
		t.Fatalf("%d handover lines for %d boots, want one per boot:\n%s", len(m), hops+1, out)
	}
	last := m[len(m)-1]
	if last[2] != strconv.Itoa(hops+2) {
		t.Errorf("the last boot hands over to boot %s, want %d", last[2], hops+2)
	}
	if !strings.Contains(out, fmt.Sprintf("\n1..%d\n", hops+1)) || strings.Contains(out, "\nnot ok") || !strings.HasSuffix(out, "# kho-sim: done\n") {
		t.Errorf("want %d passing boots and a complete KTAP stream:\n%s", hops+1, out)
	}
	root, err := strconv.ParseUint(last[1], 0, 64)
	if err != nil {
		t.Fatal(err)
	}
	return img, root
}

// TestKeepHandoverInspectFindsRoot: after sim --keep-handover, inspect
// --image without --root finds the last boot's handover by itself and
// reports it without a finding, in every generation.
func TestKeepHandoverInspectFindsRoot(t *testing.T) {
	for _, abi := range kernel.Generations() {
		for _, tc := range []struct {
			scenario string
			hops     int
		}{{"default", 2}, {"many-hops", 5}, {"sharing", 0}} {
			t.Run(fmt.Sprintf("%s/%s/%d", abi, tc.scenario, tc.hops), func(t *testing.T) {
				img, root := keptHandover(t, abi, tc.scenario, tc.hops)
				code, out, errs := runCLI("inspect", "--image", img, "--json")
				if code != 0 {
					t.Fatalf("inspect --image without --root: exit %d: %s", code, errs)
				}
				if want := fmt.Sprintf("KHO root FDT found at %#x", root); !strings.Contains(errs, want) {
					t.Errorf("stderr %q does not say %q", errs, want)
				}
				var rep inspect.Report
				if err := json.Unmarshal([]byte(out), &rep); err != nil {
					t.Fatal(err)
				}
				if uint64(rep.RootPA) != root || len(rep.Findings) != 0 || rep.KHOSim == nil || rep.KHOSim.Boot != tc.hops+1 {
					t.Errorf("inspect chose root %#x (boot %v, findings %v), want %#x written by boot %d", uint64(rep.RootPA), rep.KHOSim, rep.Findings, root, tc.hops+1)
				}
				if rep.Generation == nil || rep.Generation.Name != string(abi) {
					t.Errorf("generation %+v, want %s", rep.Generation, abi)
				}
			})
		}
	}
}

// TestInspectImageWithoutHandover: an image with no KHO root is a clear
// error that says what to pass, not a guess.
func TestInspectImageWithoutHandover(t *testing.T) {
	img := filepath.Join(t.TempDir(), "mem")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runCLI("inspect", "--image", img)
	if code != 1 || !strings.Contains(errs, "no KHO root FDT in the image") || !strings.Contains(errs, "--root ADDR") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
}

// TestKeptHandoverPassesLibfdt: Debian's libfdt (fdt_check_full) accepts
// every FDT of the handover sim --keep-handover leaves: the KHO root and
// each child that is an FDT (kho-sim's metadata, 7.0's and luo-v2's LUO FDT;
// 7.2's LUO child is a raw blob). And the text output's DTS, with its
// u64 comments, compiles in dtc to the blob dtc makes of the plain DTS.
func TestKeptHandoverPassesLibfdt(t *testing.T) {
	requireTool(t, python, "-c", "import libfdt")
	requireTool(t, "dtc", "--version")
	const checkFull = `import libfdt, sys
b = bytearray(sys.stdin.buffer.read())
err = libfdt.fdt_check_full(b, len(b))
if err:
    sys.exit("fdt_check_full: %s" % libfdt.fdt_strerror(err))`
	for _, abi := range kernel.Generations() {
		t.Run(string(abi), func(t *testing.T) {
			img, _ := keptHandover(t, abi, "default", 2)
			code, out, errs := runCLI("inspect", "--image", img, "--json")
			if code != 0 {
				t.Fatalf("inspect: exit %d: %s", code, errs)
			}
			var rep inspect.Report
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatal(err)
			}
			mem, err := os.ReadFile(img)
			if err != nil {
				t.Fatal(err)
			}
			type blob struct {
				name     string
				pa, size uint64
				dts      string
			}
			blobs := []blob{{"KHO root", uint64(rep.KHO.PA), uint64(rep.KHO.Size), rep.KHO.DTS}}
			for _, s := range rep.Subtrees {
				if s.Kind == inspect.KindFDT {
					blobs = append(blobs, blob{s.Name, uint64(s.PA), uint64(s.Size), s.DTS})
				}
			}
			if want := map[kernel.Generation]int{kernel.V70: 3, kernel.LUOv2: 3, kernel.V72: 2}[abi]; len(blobs) != want {
				t.Fatalf("%d FDTs in the handover, want %d", len(blobs), want)
			}
			_, text, _ := runCLI("inspect", "--image", img)
			for _, b := range blobs {
				off := b.pa - imageBase
				cmd := exec.Command(python, "-c", checkFull)
				cmd.Stdin = bytes.NewReader(mem[off : off+b.size])
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("libfdt rejects %s at %#x (%d bytes): %v: %s", b.name, b.pa, b.size, err, out)
				}
				annotated := annotatedDTS(t, text, b.pa)
				if !strings.Contains(annotated, "; /* 0x") {
					t.Errorf("%s: no u64 comment in the text output:\n%s", b.name, annotated)
				}
				if got, want := dtcCompile(t, annotated), dtcCompile(t, b.dts); !bytes.Equal(got, want) {
					t.Errorf("%s: the annotated DTS compiles to another blob than dtc's own DTS:\n%s", b.name, annotated)
				}
			}
		})
	}
}

// annotatedDTS cuts the DTS of the FDT at pa out of inspect's text output.
func annotatedDTS(t *testing.T, text string, pa uint64) string {
	t.Helper()
	m := regexp.MustCompile(fmt.Sprintf(`(?s)== [^\n]*FDT at %#x[^\n]*==\n(/dts-v1/;.*?\n};\n)`, pa)).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no DTS for the FDT at %#x in:\n%s", pa, text)
	}
	return m[1]
}

func dtcCompile(t *testing.T, dts string) []byte {
	t.Helper()
	var stderr bytes.Buffer
	// kho-sim's metadata names its FLB nodes with a "name" property,
	// which dtc's name_properties check expects to be the node name.
	cmd := exec.Command("dtc", "-I", "dts", "-O", "dtb", "-q", "-E", "no-name_properties", "-")
	cmd.Stdin = strings.NewReader(dts)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("dtc -I dts -O dtb: %v: %s\n%s", err, stderr.Bytes(), dts)
	}
	return out
}

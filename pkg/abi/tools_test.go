package abi

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"
)

// These tests hold the Go description against what gcc makes of C
// declarations: the kernel's, copied by hand into testdata/luo_abi.h, and
// CHeader's own output.

const kernelHeader = "testdata/luo_abi.h"

// requireTool skips the test when cmd is missing, or fails it when the
// environment demands the tools (KHO_SIM_TOOLS=required, set in CI).
func requireTool(t *testing.T, cmd string, args ...string) {
	t.Helper()
	if err := exec.Command(cmd, args...).Run(); err != nil {
		msg := fmt.Sprintf("%s %s unavailable: %v", cmd, strings.Join(args, " "), err)
		if os.Getenv("KHO_SIM_TOOLS") == "required" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// offsetProgram is a C program that prints, for every layout, "struct NAME
// SIZE" and "field NAME FIELD OFFSET SIZE" as the compiler sees them, and
// with constants, "const NAME VALUE" (strings quoted by Go afterwards).
func offsetProgram(header string, layouts []Struct, constants []Constant) string {
	var b strings.Builder
	fmt.Fprintf(&b, "#include <stdio.h>\n#include <stddef.h>\n#include %q\n\nint main(void)\n{\n", header)
	for _, s := range layouts {
		fmt.Fprintf(&b, "\tprintf(\"struct %s %%zu\\n\", sizeof(struct %s));\n", s.Name, s.Name)
		for _, f := range s.Fields {
			fmt.Fprintf(&b, "\tprintf(\"field %s %s %%zu %%zu\\n\", offsetof(struct %s, %s), sizeof(((struct %s *)0)->%s));\n",
				s.Name, f.Name, s.Name, f.Name, s.Name, f.Name)
		}
	}
	for _, c := range constants {
		if c.IsText {
			fmt.Fprintf(&b, "\tprintf(\"text %s %%s\\n\", %s);\n", c.Name, c.Name)
		} else {
			fmt.Fprintf(&b, "\tprintf(\"const %s %%llu\\n\", (unsigned long long)(%s));\n", c.Name, c.Name)
		}
	}
	b.WriteString("\treturn 0;\n}\n")
	return b.String()
}

// runOffsets compiles and runs offsetProgram and returns its lines, keyed
// by everything before the values: "struct NAME", "field NAME FIELD",
// "const NAME".
func runOffsets(t *testing.T, header string, constants []Constant) map[string]string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "offsets.c")
	if err := os.WriteFile(src, []byte(offsetProgram(header, Layouts(), constants)), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "offsets")
	if out, err := exec.Command("gcc", "-std=gnu11", "-Wall", "-Werror", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	got := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		words := strings.Fields(sc.Text())
		switch {
		case len(words) == 3 && words[0] == "struct", len(words) == 3 && words[0] == "const":
			got[words[0]+" "+words[1]] = words[2]
		case len(words) >= 2 && words[0] == "text":
			_, value, _ := strings.Cut(strings.TrimPrefix(sc.Text(), "text "+words[1]), " ")
			got["const "+words[1]] = strconv.Quote(value)
		case len(words) == 5 && words[0] == "field":
			got[strings.Join(words[:3], " ")] = words[3] + " " + words[4]
		default:
			t.Fatalf("unexpected output line %q", sc.Text())
		}
	}
	return got
}

func compareOffsets(t *testing.T, got map[string]string, constants []Constant) {
	t.Helper()
	want := map[string]string{}
	for _, s := range Layouts() {
		want["struct "+s.Name] = strconv.Itoa(s.Size)
		for _, f := range s.Fields {
			want["field "+s.Name+" "+f.Name] = fmt.Sprintf("%d %d", f.Offset, f.Size)
		}
	}
	for _, c := range constants {
		want["const "+c.Name] = c.Value()
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: gcc says %q, Go says %q", k, got[k], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("gcc printed %d values, want %d", len(got), len(want))
	}
}

func TestGCC_KernelDeclarationsMatchLayouts(t *testing.T) {
	requireTool(t, "gcc", "--version")
	header, err := filepath.Abs(kernelHeader)
	if err != nil {
		t.Fatal(err)
	}
	compareOffsets(t, runOffsets(t, header, Constants()), Constants())
}

func TestGCC_CHeaderMatchesLayouts(t *testing.T) {
	requireTool(t, "gcc", "--version")
	header := filepath.Join(t.TempDir(), "kho_sim_abi.h")
	if err := os.WriteFile(header, []byte(CHeader()), 0o644); err != nil {
		t.Fatal(err)
	}
	compareOffsets(t, runOffsets(t, header, nil), nil)
}

// btfObject compiles C source that includes the header text with
// debugging information, and encodes it as BTF with pahole -J, which adds
// a .BTF section to the object.
func btfObject(t *testing.T, header string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "luo_abi.h"), []byte(header), 0o644); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "types.c")
	if err := os.WriteFile(src, []byte("#include \"luo_abi.h\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	obj := filepath.Join(dir, "types.o")
	// gcc drops the DWARF of types nothing uses unless told otherwise.
	if out, err := exec.Command("gcc", "-g", "-fno-eliminate-unused-debug-types", "-c", "-o", obj, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	if out, err := exec.Command("pahole", "-J", obj).CombinedOutput(); err != nil {
		t.Fatalf("pahole -J: %v\n%s", err, out)
	}
	return obj
}

func readKernelHeader(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(kernelHeader)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// swapFLBFields moves luo_flb_ser's count before its data.
func swapFLBFields(t *testing.T, header string) string {
	t.Helper()
	const from = "char name[LIVEUPDATE_FLB_COMPAT_LENGTH];\n\tu64 data;\n\tu64 count;"
	const to = "char name[LIVEUPDATE_FLB_COMPAT_LENGTH];\n\tu64 count;\n\tu64 data;"
	if strings.Count(header, from) != 1 {
		t.Fatalf("%s: luo_flb_ser's fields not found once", kernelHeader)
	}
	return strings.Replace(header, from, to, 1)
}

func TestPahole_CheckBTF(t *testing.T) {
	requireTool(t, "gcc", "--version")
	requireTool(t, "pahole", "--version")
	header := readKernelHeader(t)
	tests := []struct {
		name   string
		header string
		// wantDiffs maps a mismatching struct to its differences; every
		// other struct must match.
		wantDiffs map[string][]string
		// strip drops the symbol table, as a distribution's vmlinux has
		// none: btf.LoadSpec refuses such a file, LoadBTF must not.
		strip bool
	}{
		{"kernel declarations", header, nil, false},
		{"kernel declarations, stripped", header, nil, true},
		{"luo_flb_ser data and count swapped", swapFLBFields(t, header), map[string][]string{
			"luo_flb_ser": {
				"field data: kho-sim offset 48 size 8, kernel offset 56 size 8",
				"field count: kho-sim offset 56 size 8, kernel offset 48 size 8",
			},
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := btfObject(t, tt.header)
			if tt.strip {
				requireTool(t, "strip", "--version")
				if out, err := exec.Command("strip", "--strip-all", obj).CombinedOutput(); err != nil {
					t.Fatalf("strip: %v\n%s", err, out)
				}
				if _, err := btf.LoadSpec(obj); err == nil {
					t.Fatal("btf.LoadSpec reads the stripped object: the case tests nothing")
				}
			}
			spec, err := LoadBTF(obj)
			if err != nil {
				t.Fatal(err)
			}
			results, err := CheckBTF(spec)
			if err != nil {
				t.Fatal(err)
			}
			if len(results) != len(Layouts()) {
				t.Fatalf("%d results for %d layouts", len(results), len(Layouts()))
			}
			for _, r := range results {
				want, mismatch := tt.wantDiffs[r.Struct.Name]
				var got []string
				for _, d := range r.Differences {
					got = append(got, d.String())
				}
				switch {
				case mismatch && (r.Verdict != Mismatch || strings.Join(got, "\n") != strings.Join(want, "\n")):
					t.Errorf("%s: %v %q, want mismatch %q", r.Struct.Name, r.Verdict, got, want)
				case !mismatch && r.Verdict != Match:
					t.Errorf("%s: %v %q %s, want match", r.Struct.Name, r.Verdict, got, r.Note)
				}
			}
		})
	}
}

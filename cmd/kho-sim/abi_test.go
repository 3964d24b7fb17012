package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kho-sim/kho-sim/pkg/abi"
	"github.com/kho-sim/kho-sim/pkg/ktap"
)

func TestABI_Table(t *testing.T) {
	code, out, errs := run("abi")
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	for _, s := range abi.Layouts() {
		block := fmt.Sprintf("\nstruct %s: %d bytes, ", s.Name, s.Size)
		i := strings.Index(out, block)
		if i < 0 {
			t.Errorf("no header line %q", strings.TrimSpace(block))
			continue
		}
		body, _, _ := strings.Cut(out[i+1:], "\n\n")
		for _, f := range s.Fields {
			row := regexp.MustCompile(fmt.Sprintf(`(?m)^ +%d +%d +%s +%s$`, f.Offset, f.Size, regexp.QuoteMeta(f.Type), f.Name))
			if !row.MatchString(body) {
				t.Errorf("struct %s: no row for field %s (offset %d, size %d) in\n%s", s.Name, f.Name, f.Offset, f.Size, body)
			}
		}
	}
	for _, c := range abi.Constants() {
		row := regexp.MustCompile(fmt.Sprintf(`(?m)^ +%s +%s +`, c.Name, regexp.QuoteMeta(c.Value())))
		if !row.MatchString(out) {
			t.Errorf("no row for constant %s = %s", c.Name, c.Value())
		}
	}
}

func TestABI_JSON(t *testing.T) {
	code, out, errs := run("abi", "--json")
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	var doc struct {
		ABI       string       `json:"abi"`
		Structs   []abi.Struct `json:"structs"`
		Constants []struct {
			Name   string `json:"name"`
			Value  any    `json:"value"`
			Source string `json:"source"`
		} `json:"constants"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	layouts := abi.Layouts()
	if len(doc.Structs) != len(layouts) {
		t.Fatalf("%d structs, want %d", len(doc.Structs), len(layouts))
	}
	for i, s := range layouts {
		got, _ := json.Marshal(doc.Structs[i])
		want, _ := json.Marshal(s)
		if string(got) != string(want) {
			t.Errorf("struct %d:\n got %s\nwant %s", i, got, want)
		}
	}
	constants := abi.Constants()
	if len(doc.Constants) != len(constants) {
		t.Fatalf("%d constants, want %d", len(doc.Constants), len(constants))
	}
	for i, c := range constants {
		got := doc.Constants[i]
		var want any = float64(c.Number)
		if c.IsText {
			want = c.Text
		}
		if got.Name != c.Name || got.Value != want || got.Source != c.Source {
			t.Errorf("constant %d: %+v, want %s = %v", i, got, c.Name, want)
		}
	}
	// Stable: the same bytes every time.
	if _, again, _ := run("abi", "--json"); again != out {
		t.Error("two runs print different JSON")
	}
}

func TestABI_CHeader(t *testing.T) {
	code, out, errs := run("abi", "--c")
	if code != 0 || errs != "" || out != abi.CHeader() {
		t.Fatalf("exit %d, stderr %q, output equal to CHeader: %v", code, errs, out == abi.CHeader())
	}
}

func TestABI_Usage(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"abi", "--json", "--c"}, "kho-sim abi: --json and --c exclude each other\n"},
		{[]string{"abi", "layouts"}, "kho-sim abi: unexpected argument \"layouts\"\n"},
		{[]string{"abi", "check", "extra"}, "kho-sim abi: unexpected argument \"extra\"\n"},
		{[]string{"abi", "check", "--btf"}, "flag needs an argument"},
	}
	for _, tt := range tests {
		code, out, errs := run(tt.args...)
		if code != 2 || out != "" || !strings.Contains(errs, tt.want) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2 and %q", tt.args, code, out, errs, tt.want)
		}
	}
}

func TestABICheck_BadInput(t *testing.T) {
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(dir, "missing"), "no such file or directory"},
		{"directory", dir, "no BTF: a directory, not a regular file"},
		{"text", writeFile(t, "not BTF at all\n"), "no BTF: "},
		{"empty", writeFile(t, ""), "no BTF: only 0 bytes"},
		{"ELF without .BTF", exe, "no BTF: ELF file without a .BTF section"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := run("abi", "check", "--btf", tt.path)
			if code != 1 || out != "" {
				t.Errorf("exit %d, stdout %q; want 1 and nothing", code, out)
			}
			if !strings.HasPrefix(errs, "kho-sim abi: ") || strings.Count(errs, "\n") != 1 ||
				!strings.Contains(errs, tt.path) || !strings.Contains(errs, tt.want) {
				t.Errorf("stderr %q: want one line naming %s with %q", errs, tt.path, tt.want)
			}
		})
	}
}

// checkKTAP runs abi check on path and validates its KTAP.
func checkKTAP(t *testing.T, path string) (code int, out string, report *ktap.Report) {
	t.Helper()
	code, out, errs := run("abi", "check", "--btf", path)
	if errs != "" {
		t.Errorf("stderr %q", errs)
	}
	if problems := ktap.Validate(strings.NewReader(out)); len(problems) > 0 {
		t.Errorf("invalid KTAP %v in\n%s", problems, out)
	}
	report, err := ktap.Parse(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(report.Results) != len(abi.Layouts()) {
		t.Fatalf("%d results, want one per struct (%d):\n%s", len(report.Results), len(abi.Layouts()), out)
	}
	return code, out, report
}

func TestABICheck_RunningKernel(t *testing.T) {
	if _, err := os.Stat(defaultBTF); err != nil {
		t.Skipf("no kernel BTF: %v", err)
	}
	spec, err := abi.LoadBTF(defaultBTF)
	if err != nil {
		t.Fatal(err)
	}
	_, lookupErr := spec.AnyTypesByName("luo_flb_ser")
	stock := lookupErr != nil // a kernel without LUO

	code, out, _ := checkKTAP(t, defaultBTF)
	if code != 0 {
		t.Errorf("exit %d:\n%s", code, out)
	}
	for i, s := range abi.Layouts() {
		line := fmt.Sprintf("ok %d %s", i+1, s.Name)
		if strings.HasPrefix(s.Name, "luo_") && stock {
			line += " # SKIP absent from BTF"
		}
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(line) + `( # SKIP .*)?$`).MatchString(out) {
			t.Errorf("no line %q in\n%s", line, out)
		}
	}
}

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

// paholeObject compiles C declarations with DWARF and has pahole -J add
// the matching .BTF section to the object, as the kernel build does for
// vmlinux.
func paholeObject(t *testing.T, header string) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "luo_abi.c")
	if err := os.WriteFile(src, []byte(header), 0o644); err != nil {
		t.Fatal(err)
	}
	obj := filepath.Join(dir, "luo_abi.o")
	// Without -fno-eliminate-unused-debug-types gcc leaves out structs
	// that no code uses.
	if out, err := exec.Command("gcc", "-g", "-fno-eliminate-unused-debug-types", "-c", "-o", obj, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	if out, err := exec.Command("pahole", "-J", obj).CombinedOutput(); err != nil {
		t.Fatalf("pahole -J: %v\n%s", err, out)
	}
	return obj
}

func TestABICheck_PaholeBTF(t *testing.T) {
	requireTool(t, "gcc", "--version")
	requireTool(t, "pahole", "--version")
	b, err := os.ReadFile("../../pkg/abi/testdata/luo_abi.h")
	if err != nil {
		t.Fatal(err)
	}
	header := string(b)
	const fields = "char name[LIVEUPDATE_FLB_COMPAT_LENGTH];\n\tu64 data;\n\tu64 count;"
	if strings.Count(header, fields) != 1 {
		t.Fatal("luo_flb_ser's fields not found once in luo_abi.h")
	}
	moved := strings.Replace(header, fields, "char name[LIVEUPDATE_FLB_COMPAT_LENGTH];\n\tu64 count;\n\tu64 data;", 1)

	t.Run("kernel declarations", func(t *testing.T) {
		code, out, report := checkKTAP(t, paholeObject(t, header))
		if code != 0 || !report.Passed() {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		for _, r := range report.Results {
			if r.Directive.Kind != "" {
				t.Errorf("%s: %s %s, want a plain ok: the object defines every struct", r.Description, r.Directive.Kind, r.Directive.Reason)
			}
		}
	})
	t.Run("luo_flb_ser count moved before data", func(t *testing.T) {
		code, out, report := checkKTAP(t, paholeObject(t, moved))
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		for _, r := range report.Results {
			if wantOK := r.Description != "luo_flb_ser"; r.OK != wantOK {
				t.Errorf("%s: ok %v, want %v", r.Description, r.OK, wantOK)
			}
		}
		for _, diag := range []string{
			"# luo_flb_ser: field data: kho-sim offset 48 size 8, kernel offset 56 size 8\n",
			"# luo_flb_ser: field count: kho-sim offset 56 size 8, kernel offset 48 size 8\n",
			"not ok 2 luo_flb_ser\n",
		} {
			if !strings.Contains(out, diag) {
				t.Errorf("no %q in\n%s", diag, out)
			}
		}
	})
}

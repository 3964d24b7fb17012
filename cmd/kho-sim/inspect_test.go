package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kho-sim/kho-sim/internal/check"
	"github.com/kho-sim/kho-sim/internal/realhandover"
	"github.com/kho-sim/kho-sim/internal/scenario"
	"github.com/kho-sim/kho-sim/internal/sim"
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/luo"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// runCLI runs the command line and returns its exit status and output.
func runCLI(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = mainWithArgs(args, &o, &e)
	return code, o.String(), e.String()
}

const (
	imageBase = 0x10000000
	imageSize = 16 << 20
)

// handoverImage runs boot 1 of the default scenario (2 boots) on a file
// and returns the file and the root address it handed over.
func handoverImage(t *testing.T) (string, uint64) {
	t.Helper()
	return handoverImageABI(t, kernel.V70)
}

// handoverImageABI is handoverImage in the given generation.
func handoverImageABI(t *testing.T, abi kernel.Generation) (string, uint64) {
	t.Helper()
	sc, err := scenario.Lookup("default")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "mem")
	r, err := physmem.OpenFile(path, imageBase, imageSize)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	out := sim.Run(sim.Config{Region: r, Scenario: sc, In: sim.Handover{Boot: 1}, Boots: 2, Out: io.Discard, ABI: abi})
	if out.Next.RootPA == 0 {
		t.Fatalf("boot 1 (%s) handed nothing over", abi)
	}
	return path, out.Next.RootPA
}

// expected is what an image holds, read with pkg/kho, internal/sim and the
// layout constants of pkg/luo, not with pkg/inspect.
type expected struct {
	flbs     []check.Entry
	flbPA    uint64
	sessions []string
	ranges   []physmem.Range
}

func expectedHandover(t *testing.T, path string, root uint64) expected {
	t.Helper()
	r, err := physmem.OpenFile(path, imageBase, imageSize)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	in, err := kho.ReadIncoming(r, root)
	if err != nil {
		t.Fatal(err)
	}
	tree, _, err := in.SubtreeFDT(luo.FDTKHOEntryName)
	if err != nil {
		t.Fatal(err)
	}
	var e expected
	e.ranges = in.Ranges()
	e.flbPA, _ = tree.Lookup("/" + luo.FDTFLBNode).U64(luo.FDTFLBHeader)
	page, err := in.Map(e.flbPA, luo.FLBPageSize)
	if err != nil {
		t.Fatal(err)
	}
	table, findings := luo.ReadFLBTable(kernel.V70, e.flbPA, page)
	for _, f := range table.Entries {
		e.flbs = append(e.flbs, check.Entry{Name: f.Name, Data: f.Data, Count: f.Count})
	}
	if len(findings) != 0 || len(e.flbs) == 0 {
		t.Fatalf("FLB table %v, %v", e.flbs, findings)
	}
	sessPA, _ := tree.Lookup("/" + luo.FDTSessionNode).U64(luo.FDTSessionHeader)
	block, err := in.Map(sessPA, luo.SessionBlockSize)
	if err != nil {
		t.Fatal(err)
	}
	for i := range binary.LittleEndian.Uint64(block) {
		name := block[luo.SessionHeaderSize+i*luo.SessionEntrySize:][:luo.SessionNameLen]
		e.sessions = append(e.sessions, string(bytes.TrimRight(name, "\x00")))
	}
	if len(e.sessions) == 0 {
		t.Fatal("no sessions in the image")
	}
	return e
}

func TestInspectImageText(t *testing.T) {
	path, root := handoverImage(t)
	want := expectedHandover(t, path, root)
	code, out, errs := runCLI("inspect", "--image", path, "--root", fmt.Sprintf("%#x", root))
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q\n%s", code, errs, out)
	}
	musts := []string{`compatible = "kho-v1";`, `compatible = "luo-v1";`, "== findings: 0 =="}
	for _, f := range want.flbs {
		musts = append(musts, fmt.Sprintf("%q  %#x  %d\n", f.Name, f.Data, f.Count))
	}
	for _, s := range want.sessions {
		musts = append(musts, fmt.Sprintf("%q: files", s))
	}
	for _, rg := range want.ranges {
		musts = append(musts, fmt.Sprintf("%#x-%#x", rg.Start, rg.End()-1))
	}
	for _, m := range musts {
		if !strings.Contains(squeeze(out), squeeze(m)) {
			t.Errorf("output lacks %q", m)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
}

// squeeze collapses runs of spaces, so table padding does not matter.
func squeeze(s string) string {
	for strings.Contains(s, "  ") {
		s = strings.ReplaceAll(s, "  ", " ")
	}
	return s
}

func TestInspectImageJSON(t *testing.T) {
	path, root := handoverImage(t)
	want := expectedHandover(t, path, root)
	code, out, errs := runCLI("inspect", "--json", "--image", path, "--base", "0x10000000", "--size", "16M", "--root", fmt.Sprintf("%#x", root))
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	var doc struct {
		RootPA string `json:"root_pa"`
		KHO    struct {
			Compatible string `json:"compatible"`
		} `json:"kho"`
		LUO struct {
			LiveupdateNumber uint64 `json:"liveupdate_number"`
			FLB              struct {
				PA      string `json:"pa"`
				Count   uint64 `json:"count"`
				Entries []struct {
					Name  string `json:"name"`
					Data  string `json:"data"`
					Count uint64 `json:"count"`
				} `json:"entries"`
			} `json:"flb"`
			Sessions struct {
				Sessions []struct {
					Name  string            `json:"name"`
					Files []json.RawMessage `json:"files"`
				} `json:"sessions"`
			} `json:"sessions"`
		} `json:"luo"`
		KHOSim *struct {
			Scenario string `json:"scenario"`
		} `json:"kho_sim"`
		Memory struct {
			Ranges []struct {
				Start string `json:"start"`
				End   string `json:"end"`
				Size  uint64 `json:"size"`
			} `json:"ranges"`
		} `json:"preserved_memory"`
		Findings []json.RawMessage `json:"findings"`
	}
	dec := json.NewDecoder(strings.NewReader(out))
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("JSON: %v\n%s", err, out)
	}
	if doc.Findings == nil || len(doc.Findings) != 0 || !strings.Contains(out, `"findings": []`) {
		t.Errorf("findings %v, want []", doc.Findings)
	}
	if doc.RootPA != fmt.Sprintf("%#x", root) || doc.KHO.Compatible != "kho-v1" || doc.LUO.LiveupdateNumber != 1 || doc.KHOSim == nil || doc.KHOSim.Scenario != "default" {
		t.Errorf("document: %+v", doc)
	}
	if doc.LUO.FLB.PA != fmt.Sprintf("%#x", want.flbPA) || int(doc.LUO.FLB.Count) != len(want.flbs) || len(doc.LUO.FLB.Entries) != len(want.flbs) {
		t.Fatalf("FLB table %+v, want %+v", doc.LUO.FLB, want.flbs)
	}
	for i, e := range doc.LUO.FLB.Entries {
		if w := want.flbs[i]; e.Name != w.Name || e.Data != fmt.Sprintf("%#x", w.Data) || e.Count != w.Count {
			t.Errorf("FLB %d: %+v, want %+v", i, e, w)
		}
	}
	if len(doc.LUO.Sessions.Sessions) != len(want.sessions) {
		t.Errorf("sessions %+v, want %v", doc.LUO.Sessions.Sessions, want.sessions)
	}
	for i, s := range doc.LUO.Sessions.Sessions {
		if i < len(want.sessions) && (s.Name != want.sessions[i] || len(s.Files) == 0) {
			t.Errorf("session %d: %+v, want %q", i, s, want.sessions[i])
		}
	}
	if len(doc.Memory.Ranges) != len(want.ranges) || doc.Memory.Ranges[0].Start != fmt.Sprintf("%#x", want.ranges[0].Start) ||
		doc.Memory.Ranges[0].Size != want.ranges[0].Size {
		t.Errorf("ranges %+v, want %v", doc.Memory.Ranges, want.ranges)
	}
}

func TestInspectDamagedImage(t *testing.T) {
	path, root := handoverImage(t)
	want := expectedHandover(t, path, root)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := physmem.OpenFile(path, imageBase, imageSize)
	if err != nil {
		t.Fatal(err)
	}
	count, err := r.Bytes(want.flbPA+8, 8) // luo_flb_header_ser.count
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint64(count, 64)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	damaged, err := os.ReadFile(path)
	if err != nil || bytes.Equal(before, damaged) {
		t.Fatalf("image not damaged: %v", err)
	}

	code, out, errs := runCLI("inspect", "--image", path, "--root", fmt.Sprintf("%#x", root))
	if code != 1 || errs != "" {
		t.Errorf("exit %d, stderr %q; want 1 and nothing on stderr", code, errs)
	}
	for _, w := range []string{"FLB header count 64 above LUO_FLB_MAX 63", kernel.V70.Does(kernel.ReadsPastPage), `compatible = "kho-v1";`, want.flbs[0].Name} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q", w)
		}
	}
	code, out, _ = runCLI("inspect", "--json", "--image", path, "--root", fmt.Sprintf("%#x", root))
	var doc struct {
		Findings []struct{ Where, What, Kernel string } `json:"findings"`
	}
	if err := json.Unmarshal([]byte(out), &doc); code != 1 || err != nil || len(doc.Findings) == 0 || doc.Findings[0].Kernel != kernel.V70.Does(kernel.ReadsPastPage) {
		t.Errorf("JSON: exit %d, %v, %+v", code, err, doc.Findings)
	}
	after, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(after, damaged) {
		t.Errorf("inspect changed the image file (%v)", err)
	}
}

func TestInspectErrors(t *testing.T) {
	path, root := handoverImage(t)
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	if err := os.WriteFile(small, make([]byte, 4097), 0o644); err != nil {
		t.Fatal(err)
	}
	unreadable := filepath.Join(dir, "unreadable")
	if err := os.WriteFile(unreadable, make([]byte, 4096), 0o000); err != nil {
		t.Fatal(err)
	}
	cmdline := filepath.Join(dir, "cmdline")
	if err := os.WriteFile(cmdline, []byte("console=ttyS0 memmap=16M$0x10000000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rootArg := fmt.Sprintf("%#x", root)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"garbage root", []string{"--image", path, "--root", "0x10800000"}, 1, "no FDT at 0x10800000: bad magic 0x00000000, want 0xd00dfeed"},
		{"root outside", []string{"--image", path, "--root", "0x1000"}, 1, "no FDT at 0x1000: outside the region [0x10000000-0x10ffffff]"},
		{"wrong base", []string{"--image", path, "--base", "0x20000000", "--root", rootArg}, 1, "no FDT at 0x10000000: outside the region"},
		{"missing file", []string{"--image", filepath.Join(dir, "none"), "--root", rootArg}, 1, "no such file or directory"},
		{"directory", []string{"--image", dir, "--root", rootArg}, 1, "is not a regular file"},
		{"size past the file", []string{"--image", small, "--size", "16M", "--root", rootArg}, 2, "has only 4097 bytes"},
		{"unaligned file", []string{"--image", small, "--root", rootArg}, 2, "page aligned"},
		{"no root, wrong base", []string{"--image", path, "--base", "0x20000000"}, 1, "1 KHO root FDT candidates in the image, none is valid; pass --root ADDR with one of: 0x20000000 (\"kho-v1\", 1 findings, first: "},
		{"bad root", []string{"--image", path, "--root", "zero"}, 2, `--root "zero": want a non-zero physical address`},
		{"region with image", []string{"--image", path, "--root", rootArg, "--region", "16M@0x10000000"}, 2, "--region reads /dev/mem"},
		{"base without image", []string{"--base", "0x1000"}, 2, "--base and --size describe an --image file"},
		{"no command line", []string{"--cmdline-file", path + "-none"}, 1, "read the kernel command line"},
		{"no handover on the command line", []string{"--cmdline-file", cmdline}, 2, "no handover address: the command line has no kho_sim.fdt="},
		{"bad region", []string{"--region", "16M", "--root", rootArg}, 2, "--region"},
	}
	if os.Geteuid() != 0 { // root reads any file
		tests = append(tests, struct {
			name string
			args []string
			code int
			want string
		}{"unreadable file", []string{"--image", unreadable, "--root", rootArg}, 1, "permission denied"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runCLI(append([]string{"inspect"}, tt.args...)...)
			if code != tt.code || out != "" || !strings.Contains(errs, tt.want) || !strings.HasPrefix(errs, "kho-sim inspect: ") || strings.Count(errs, "\n") != 1 {
				t.Errorf("exit %d (want %d), stdout %q, stderr %q; want one line containing %q", code, tt.code, out, errs, tt.want)
			}
		})
	}
}

func TestInspectHelp(t *testing.T) {
	code, out, errs := runCLI("inspect", "--help")
	if code != 0 || out != "" || !strings.Contains(errs, "usage: kho-sim inspect") || !strings.Contains(errs, "-json") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
}

func TestInspectGenerations(t *testing.T) {
	for _, abi := range kernel.Generations() {
		t.Run(string(abi), func(t *testing.T) {
			path, root := handoverImageABI(t, abi)
			code, out, errs := runCLI("inspect", "--json", "--image", path, "--root", fmt.Sprintf("%#x", root))
			if code != 0 || errs != "" {
				t.Fatalf("exit %d, stderr %q\n%s", code, errs, out)
			}
			var doc struct {
				Schema     int `json:"schema"`
				Generation struct {
					Name string `json:"name"`
				} `json:"generation"`
				LUO struct {
					Sessions struct {
						Sessions []json.RawMessage `json:"sessions"`
					} `json:"sessions"`
				} `json:"luo"`
			}
			if err := json.Unmarshal([]byte(out), &doc); err != nil || doc.Schema != 2 || doc.Generation.Name != string(abi) || len(doc.LUO.Sessions.Sessions) != 2 {
				t.Errorf("JSON %+v, %v", doc, err)
			}
			code, out, _ = runCLI("inspect", "--image", path, "--root", fmt.Sprintf("%#x", root))
			if want := "generation " + string(abi) + " "; code != 0 || !strings.Contains(out, want) {
				t.Errorf("exit %d, text lacks %q", code, want)
			}
		})
	}
}

// TestInspectRealHandover inspects a saved real 7.2 kernel's handover:
// valid, with the kernel's test FLBs, both sessions and the four memfds.
func TestInspectRealHandover(t *testing.T) {
	path, root := realhandover.Image(t)
	args := []string{"inspect", "--image", path, "--base", "0", "--root", fmt.Sprintf("%#x", root)}
	code, out, errs := runCLI(args...)
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q\n%s", code, errs, out)
	}
	musts := []string{`generation 7.2 (KHO "kho-v4", LUO "luo-v5")`, "== findings: 0 ==", `session 0 "kho-sim-a"`, `session 1 "kho-sim-b"`,
		`previous_release "7.2.13"`, "kho-sim metadata absent"}
	for i := range 3 {
		musts = append(musts, fmt.Sprintf("%q  %#x  4\n", fmt.Sprintf("liveupdate-test-flb-v%d", i), uint64(0xfeedf00dcafebee0)+uint64(i)))
	}
	for _, m := range musts {
		if !strings.Contains(squeeze(out), squeeze(m)) {
			t.Errorf("output lacks %q", m)
		}
	}
	if n := strings.Count(out, `"memfd-v2"`); n != 4 {
		t.Errorf("%d memfd-v2 files, want 4", n)
	}
	if t.Failed() {
		t.Log(out)
	}
	code, out, errs = runCLI(append(args, "--json")...)
	var doc struct {
		Findings []json.RawMessage `json:"findings"`
		Notes    []string          `json:"notes"`
		LUO      struct {
			FLB struct {
				Entries []struct {
					Name string `json:"name"`
					Data string `json:"data"`
				} `json:"entries"`
			} `json:"flb"`
		} `json:"luo"`
	}
	if err := json.Unmarshal([]byte(out), &doc); code != 0 || errs != "" || err != nil || doc.Findings == nil || len(doc.Findings) != 0 || len(doc.Notes) != 1 || len(doc.LUO.FLB.Entries) != 3 ||
		doc.LUO.FLB.Entries[2].Data != "0xfeedf00dcafebee2" {
		t.Errorf("JSON: exit %d, %v, %+v", code, err, doc)
	}
}

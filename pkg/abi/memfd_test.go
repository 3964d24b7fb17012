package abi

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"
)

// kernelLayouts72 is Linux 7.2's memfd-v2 ABI as its headers declare it,
// written out by hand: "name offset size" per whole-byte field, "name
// bit:bits" per bitfield.
var kernelLayouts72 = map[string]struct {
	size   int
	fields []string
}{
	"kho_vmalloc_hdr":     {8, []string{"next 0 8"}},
	"kho_vmalloc_chunk":   {4096, []string{"hdr 0 8", "phys 8 4088"}},
	"kho_vmalloc":         {16, []string{"first 0 8", "total_pages 8 4", "flags 12 2", "order 14 2"}},
	"memfd_luo_folio_ser": {16, []string{"index 8 8", "pfn 0:52", "flags 52:12"}},
	"memfd_luo_ser":       {48, []string{"pos 0 8", "size 8 8", "seals 16 4", "flags 20 4", "nr_folios 24 8", "folios 32 16"}},
}

func TestMemfdLayouts_MatchKernelHeaders(t *testing.T) {
	layouts := MemfdLayouts()
	if len(layouts) != len(kernelLayouts72) {
		t.Errorf("%d layouts, want %d", len(layouts), len(kernelLayouts72))
	}
	for _, l := range layouts {
		want, ok := kernelLayouts72[l.Name]
		if !ok {
			t.Errorf("struct %s is not in the kernel's ABI", l.Name)
			continue
		}
		got := fieldStrings(l.Struct)
		for _, b := range l.Bitfields {
			got = append(got, b.Name+" "+strconv.Itoa(b.Bit)+":"+strconv.Itoa(b.Bits))
		}
		if l.Size != want.size || !slices.Equal(got, want.fields) {
			t.Errorf("struct %s: %d bytes %q, want %d %q", l.Name, l.Size, got, want.size, want.fields)
		}
		if err := l.Consistent(); err != nil {
			t.Error(err)
		}
		if wantPacked := strings.HasPrefix(l.Name, "memfd_"); l.Packed != wantPacked {
			t.Errorf("struct %s: packed %v, want %v (memfd.h packs its structs, kexec_handover.h does not)", l.Name, l.Packed, wantPacked)
		}
	}
}

func TestLayout72Consistent(t *testing.T) {
	base := MemfdLayouts()[3] // memfd_luo_folio_ser
	tests := []struct {
		name string
		edit func(l *Layout72)
		want string
	}{
		{"gap", func(l *Layout72) { l.Bitfields[1].Bits = 11 }, "bit 63 belongs to no field"},
		{"overlap", func(l *Layout72) { l.Bitfields[1].Bit = 51; l.Bitfields[1].Bits = 13 }, "pfn and flags both hold bit 51"},
		{"outside", func(l *Layout72) { l.Fields[0].Offset = 9 }, "outside 16 bytes"},
		{"empty bitfield", func(l *Layout72) { l.Bitfields[0].Bits = 0 }, "bitfield pfn of 0 bits"},
	}
	for _, tt := range tests {
		l := base
		l.Fields = slices.Clone(base.Fields)
		l.Bitfields = slices.Clone(base.Bitfields)
		tt.edit(&l)
		if err := l.Consistent(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}

var btfU16 = &btf.Int{Name: "short unsigned int", Size: 2}

// btfLayouts72 turns MemfdLayouts into BTF as a compiler describes the
// kernel's declarations: khoser pointers as unions, bitfields as members
// with a bit offset and width.
func btfLayouts72(t testing.TB) map[string]*btf.Struct {
	t.Helper()
	byName := map[string]*btf.Struct{}
	ptr := &btf.Union{Size: 8, Members: []btf.Member{{Name: "phys", Type: btfU64}, {Name: "ptr", Type: &btf.Pointer{Target: &btf.Void{}}}}}
	for _, l := range MemfdLayouts() {
		st := &btf.Struct{Name: l.Name, Size: uint32(l.Size)}
		for _, b := range l.Bitfields {
			st.Members = append(st.Members, btf.Member{Name: b.Name, Type: btfU64, Offset: btf.Bits(b.Bit), BitfieldSize: btf.Bits(b.Bits)})
		}
		for _, f := range l.Fields {
			var typ btf.Type
			switch {
			case f.Name == "next" || f.Name == "first":
				typ = ptr
			case f.Type == "u16":
				typ = btfU16
			default:
				typ = btfType(t, f.Type, byName)
			}
			st.Members = append(st.Members, btf.Member{Name: f.Name, Type: typ, Offset: btf.Bits(f.Offset * 8)})
		}
		byName[l.Name] = st
	}
	return byName
}

func check72(t *testing.T, types ...btf.Type) map[string][]string {
	t.Helper()
	results, err := CheckBTF72(loadRaw(t, rawBTF(t, types...)))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, r := range results {
		out[r.Struct.Name] = append([]string{r.Verdict.String()}, diffStrings(r.Differences)...)
	}
	return out
}

func TestCheckBTF72_Synthetic(t *testing.T) {
	all := func(t *testing.T, edit func(map[string]*btf.Struct)) []btf.Type {
		structs := btfLayouts72(t)
		if edit != nil {
			edit(structs)
		}
		var types []btf.Type
		for _, l := range MemfdLayouts() {
			if s := structs[l.Name]; s != nil {
				types = append(types, s)
			}
		}
		return types
	}
	tests := []struct {
		name string
		edit func(map[string]*btf.Struct)
		want map[string][]string // the structs that do not match
	}{
		{"kernel layout", nil, nil},
		{"pfn one bit narrower", func(m map[string]*btf.Struct) {
			s := m["memfd_luo_folio_ser"]
			s.Members[0].BitfieldSize = 51
			s.Members[1].Offset = 51
		}, map[string][]string{"memfd_luo_folio_ser": {"mismatch",
			"field pfn: kho-sim offset 0 size 8 (bitfield of 52 bits at bit 0), kernel offset 0 size 8 (bitfield of 51 bits at bit 0)",
			"field flags: kho-sim offset 6 size 8 (bitfield of 12 bits at bit 52), kernel offset 6 size 8 (bitfield of 12 bits at bit 51)",
		}}},
		{"flags a whole u64", func(m map[string]*btf.Struct) {
			s := m["memfd_luo_folio_ser"]
			s.Members[1].BitfieldSize = 0
		}, map[string][]string{"memfd_luo_folio_ser": {"mismatch",
			"field flags: kho-sim offset 6 size 8 (bitfield of 12 bits at bit 52), kernel offset 6 size 8 (at bit 52, not a whole byte)",
		}}},
		{"seals dropped (memfd-v1)", func(m map[string]*btf.Struct) {
			s := m["memfd_luo_ser"]
			s.Members = slices.Delete(s.Members, 2, 4)
			for i := 2; i < len(s.Members); i++ {
				s.Members[i].Offset -= 64
			}
			s.Size = 40
		}, map[string][]string{"memfd_luo_ser": {"mismatch",
			"size: kho-sim 48 bytes, kernel 40 bytes",
			"field seals: kho-sim offset 16 size 4, kernel has no such field",
			"field flags: kho-sim offset 20 size 4, kernel has no such field",
			"field nr_folios: kho-sim offset 24 size 8, kernel offset 16 size 8",
			"field folios: kho-sim offset 32 size 16, kernel offset 24 size 16",
		}}},
		{"no vmalloc chunk", func(m map[string]*btf.Struct) { delete(m, "kho_vmalloc_chunk") },
			map[string][]string{"kho_vmalloc_chunk": {"absent"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := check72(t, all(t, tt.edit)...)
			for _, l := range MemfdLayouts() {
				want, bad := tt.want[l.Name]
				if !bad {
					want = []string{"match"}
				}
				if !slices.Equal(got[l.Name], want) {
					t.Errorf("%s:\n%q\nwant\n%q", l.Name, got[l.Name], want)
				}
			}
		})
	}
}

// TestPahole_CheckBTF72 compiles the kernel's declarations (copied into
// testdata/memfd_abi.h) with gcc, encodes their DWARF as BTF with pahole
// and checks MemfdLayouts against that, then a copy with pfn:51.
func TestPahole_CheckBTF72(t *testing.T) {
	requireTool(t, "gcc", "--version")
	requireTool(t, "pahole", "--version")
	b, err := os.ReadFile("testdata/memfd_abi.h")
	if err != nil {
		t.Fatal(err)
	}
	header := string(b)
	narrow := strings.Replace(header, "u64 pfn:52;\n\tu64 flags:12;", "u64 pfn:51;\n\tu64 flags:13;", 1)
	if narrow == header {
		t.Fatal("memfd_luo_folio_ser's bitfields not found in testdata/memfd_abi.h")
	}
	for _, tt := range []struct {
		name, header string
		bad          string
	}{{"kernel declarations", header, ""}, {"pfn:51", narrow, "memfd_luo_folio_ser"}} {
		t.Run(tt.name, func(t *testing.T) {
			spec, err := LoadBTF(btfObject(t, tt.header))
			if err != nil {
				t.Fatal(err)
			}
			checkAll72(t, spec, tt.bad)
		})
	}
}

// checkAll72 demands that every struct matches but bad, which must not.
func checkAll72(t *testing.T, spec *btf.Spec, bad string) {
	t.Helper()
	results, err := CheckBTF72(spec)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != len(MemfdLayouts()) {
		t.Fatalf("%d results", len(results))
	}
	for _, r := range results {
		if want := map[bool]Verdict{true: Mismatch, false: Match}[r.Struct.Name == bad]; r.Verdict != want {
			t.Errorf("%s: %v %q %s, want %v", r.Struct.Name, r.Verdict, diffStrings(r.Differences), r.Note, want)
		}
	}
}

// kernelTreeEnv names a configured Linux 7.2 source tree in which the
// kernel was built (scripts/luo-kernel/build.sh keeps one under
// .cache/luo-kernel/VERSION/src).
const kernelTreeEnv = "KHO_SIM_LUO_SRC"

// TestKernelTree_CheckBTF72 compiles the real kernel's own headers, in a
// built 7.2 tree, with the exact gcc command line the kernel's build used
// for kernel/liveupdate/kexec_handover.o (from its .cmd file) plus -g, and
// checks MemfdLayouts against the BTF pahole makes of it. It skips when
// there is no such tree (KHO_SIM_LUO_SRC, or the repository's cache).
func TestKernelTree_CheckBTF72(t *testing.T) {
	src := os.Getenv(kernelTreeEnv)
	if src == "" {
		matches, _ := filepath.Glob("../../.cache/luo-kernel/7.2*/src")
		for _, m := range matches {
			if _, err := os.Stat(filepath.Join(m, "kernel/liveupdate/.kexec_handover.o.cmd")); err == nil {
				src = m
			}
		}
	}
	if src == "" {
		t.Skip("no built Linux 7.2 tree: set " + kernelTreeEnv + " or run scripts/luo-kernel/build.sh")
	}
	requireTool(t, "pahole", "--version")
	args := kernelCompileArgs(t, filepath.Join(src, "kernel/liveupdate/.kexec_handover.o.cmd"))
	dir := t.TempDir()
	unit := filepath.Join(dir, "memfd_btf.c")
	if err := os.WriteFile(unit, []byte(`#include <linux/kho/abi/memfd.h>
struct kho_vmalloc_chunk memfd_btf_chunk;
struct memfd_luo_folio_ser memfd_btf_folio;
struct memfd_luo_ser memfd_btf_ser;
`), 0o644); err != nil {
		t.Fatal(err)
	}
	obj := filepath.Join(dir, "memfd_btf.o")
	args = append(args, "-g", "-fno-eliminate-unused-debug-types", "-c", "-o", obj, unit)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = src
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if out, err := exec.Command("pahole", "-J", obj).CombinedOutput(); err != nil {
		t.Fatalf("pahole -J: %v\n%s", err, out)
	}
	spec, err := LoadBTF(obj)
	if err != nil {
		t.Fatal(err)
	}
	checkAll72(t, spec, "")
}

// kernelCompileArgs reads the gcc command of a kbuild .cmd file and drops
// what names its own source, output and dependency file.
func kernelCompileArgs(t *testing.T, cmdFile string) []string {
	t.Helper()
	f, err := os.Open(cmdFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	if !sc.Scan() {
		t.Fatalf("%s: empty", cmdFile)
	}
	_, command, ok := strings.Cut(sc.Text(), ":= ")
	if !ok {
		t.Fatalf("%s: no savedcmd line", cmdFile)
	}
	if i := strings.Index(command, ";"); i >= 0 {
		command = command[:i] // later commands (objtool, ...) are not needed
	}
	var args []string
	words := strings.Fields(command)
	for i := 0; i < len(words); i++ {
		w := words[i]
		switch {
		case w == "-o":
			i++
		case w == "-c", strings.HasPrefix(w, "-Wp,"), strings.HasSuffix(w, ".c"):
		default:
			args = append(args, strings.Trim(w, "'"))
		}
	}
	if len(args) == 0 {
		t.Fatalf("%s: no command", cmdFile)
	}
	return args
}

package abi

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"
)

var (
	btfU64  = &btf.Typedef{Name: "u64", Type: &btf.Int{Name: "long long unsigned int", Size: 8}}
	btfU32  = &btf.Int{Name: "unsigned int", Size: 4}
	btfChar = &btf.Int{Name: "char", Size: 1, Encoding: btf.Char}
)

// btfStructs turns layouts into BTF structs, the way a compiler would
// describe Layouts. byName resolves embedded structs.
func btfStructs(t testing.TB, layouts []Struct) map[string]*btf.Struct {
	t.Helper()
	byName := map[string]*btf.Struct{}
	for _, s := range layouts {
		st := &btf.Struct{Name: s.Name, Size: uint32(s.Size)}
		for _, f := range s.Fields {
			st.Members = append(st.Members, btf.Member{Name: f.Name, Type: btfType(t, f.Type, byName), Offset: btf.Bits(f.Offset * 8)})
		}
		byName[s.Name] = st
	}
	return byName
}

func btfType(t testing.TB, ctype string, byName map[string]*btf.Struct) btf.Type {
	t.Helper()
	base, dims, isArray := strings.Cut(ctype, "[")
	var elem btf.Type
	switch {
	case base == "u64":
		elem = btfU64
	case base == "u32":
		elem = btfU32
	case base == "char":
		elem = btfChar
	case strings.HasPrefix(base, "struct "):
		elem = byName[strings.TrimPrefix(base, "struct ")]
	}
	if elem == nil {
		t.Fatalf("no BTF type for %q", ctype)
	}
	if !isArray {
		return elem
	}
	n, err := strconv.Atoi(strings.TrimSuffix(dims, "]"))
	if err != nil {
		t.Fatal(err)
	}
	return &btf.Array{Index: btfU32, Type: elem, Nelems: uint32(n)}
}

// rawBTF marshals types into a raw BTF blob, like /sys/kernel/btf/vmlinux.
func rawBTF(t testing.TB, types ...btf.Type) []byte {
	t.Helper()
	b, err := btf.NewBuilder(types, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := b.Marshal(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func loadRaw(t testing.TB, raw []byte) *btf.Spec {
	t.Helper()
	spec, err := LoadBTFFromReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

func diffStrings(diffs []Difference) []string {
	out := []string{}
	for _, d := range diffs {
		out = append(out, d.String())
	}
	return out
}

func TestCompareStruct(t *testing.T) {
	want, _ := LookupStruct("luo_flb_ser")
	tests := []struct {
		name   string
		mutate func(*btf.Struct)
		want   []string
	}{
		{"same", func(*btf.Struct) {}, []string{}},
		{"fields swapped", func(s *btf.Struct) {
			s.Members[1].Offset, s.Members[2].Offset = s.Members[2].Offset, s.Members[1].Offset
		}, []string{
			"field data: kho-sim offset 48 size 8, kernel offset 56 size 8",
			"field count: kho-sim offset 56 size 8, kernel offset 48 size 8",
		}},
		{"field missing", func(s *btf.Struct) { s.Members = s.Members[:2]; s.Size = 56 }, []string{
			"size: kho-sim 64 bytes, kernel 56 bytes",
			"field count: kho-sim offset 56 size 8, kernel has no such field",
		}},
		{"field renamed", func(s *btf.Struct) { s.Members[2].Name = "refcount" }, []string{
			"field count: kho-sim offset 56 size 8, kernel has no such field",
			"field refcount: kho-sim has no such field, kernel offset 56 size 8",
		}},
		{"field added", func(s *btf.Struct) {
			s.Members = append(s.Members, btf.Member{Name: "flags", Type: btfU64, Offset: 64 * 8})
			s.Size = 72
		}, []string{
			"size: kho-sim 64 bytes, kernel 72 bytes",
			"field flags: kho-sim has no such field, kernel offset 64 size 8",
		}},
		{"anonymous member added", func(s *btf.Struct) {
			s.Members = append(s.Members, btf.Member{Type: &btf.Union{Size: 8, Members: []btf.Member{{Name: "a", Type: btfU64}}}, Offset: 64 * 8})
			s.Size = 72
		}, []string{
			"size: kho-sim 64 bytes, kernel 72 bytes",
			"field (anonymous): kho-sim has no such field, kernel offset 64 size 8",
		}},
		{"name shorter", func(s *btf.Struct) {
			s.Members[0].Type = &btf.Array{Index: btfU32, Type: btfChar, Nelems: 32}
		}, []string{"field name: kho-sim offset 0 size 48, kernel offset 0 size 32"}},
		{"bitfield", func(s *btf.Struct) { s.Members[2].BitfieldSize = 3 }, []string{
			"field count: kho-sim offset 56 size 8, kernel offset 56 size 8 (bitfield of 3 bits at bit 448)",
		}},
		{"offset inside a byte", func(s *btf.Struct) { s.Members[2].Offset += 4 }, []string{
			"field count: kho-sim offset 56 size 8, kernel offset 56 size 8 (at bit 452, not a whole byte)",
		}},
		{"type without a size", func(s *btf.Struct) { s.Members[1].Type = &btf.Fwd{Name: "opaque"} }, []string{
			"field data: kho-sim offset 48 size 8, kernel offset 48 size 0 (type Fwd:\"opaque\" without a size)",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := btfStructs(t, Layouts())["luo_flb_ser"]
			tt.mutate(got)
			if diffs := diffStrings(CompareStruct(want, got)); !slices.Equal(diffs, tt.want) {
				t.Errorf("differences\n%q\nwant\n%q", diffs, tt.want)
			}
		})
	}
}

// The kernel declares khoser pointers as unions of a phys_addr_t and a
// pointer: only the size counts.
func TestCompareStruct_KHOSERPointerUnion(t *testing.T) {
	want, _ := LookupStruct("khoser_mem_chunk_hdr")
	ptr := &btf.Pointer{Target: &btf.Void{}}
	union := &btf.Union{Size: 8, Members: []btf.Member{{Name: "phys", Type: btfU64}, {Name: "ptr", Type: ptr}}}
	got := &btf.Struct{Name: want.Name, Size: 16, Members: []btf.Member{
		{Name: "next", Type: union},
		{Name: "order", Type: btfU32, Offset: 64},
		{Name: "num_elms", Type: btfU32, Offset: 96},
	}}
	if diffs := CompareStruct(want, got); len(diffs) != 0 {
		t.Errorf("differences %q", diffStrings(diffs))
	}
}

func verdicts(results []StructResult) map[string]string {
	out := map[string]string{}
	for _, r := range results {
		v := r.Verdict.String()
		if r.Note != "" {
			v += " (" + r.Note + ")"
		}
		out[r.Struct.Name] = v
	}
	return out
}

func TestCheckBTF_RawBlob(t *testing.T) {
	all := func(t testing.TB) []btf.Type {
		var types []btf.Type
		structs := btfStructs(t, Layouts())
		for _, s := range Layouts() {
			types = append(types, structs[s.Name])
		}
		return types
	}
	allVerdicts := func(v string) map[string]string {
		out := map[string]string{}
		for _, s := range Layouts() {
			out[s.Name] = v
		}
		return out
	}
	tests := []struct {
		name  string
		types func(t testing.TB) []btf.Type
		want  map[string]string // struct name to verdict
	}{
		{"all present", all, allVerdicts("match")},
		{"none present", func(testing.TB) []btf.Type { return []btf.Type{btfU32} }, allVerdicts("absent (absent from BTF)")},
		{"forward declaration and same-named typedef", func(t testing.TB) []btf.Type {
			return []btf.Type{
				&btf.Fwd{Name: "luo_flb_ser", Kind: btf.FwdStruct},
				&btf.Typedef{Name: "luo_file_ser", Type: btfU64},
			}
		}, func() map[string]string {
			m := allVerdicts("absent (absent from BTF)")
			m["luo_flb_ser"] = "absent (only forward-declared in BTF)"
			return m
		}()},
		{"two definitions, one different", func(t testing.TB) []btf.Type {
			other := btfStructs(t, Layouts())["luo_flb_ser"]
			other.Members[0].Name = "compatible"
			return append(all(t), other)
		}, func() map[string]string {
			m := allVerdicts("match")
			m["luo_flb_ser"] = "mismatch (2 definitions in BTF)"
			return m
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			results, err := CheckBTF(loadRaw(t, rawBTF(t, tt.types(t)...)))
			if err != nil {
				t.Fatal(err)
			}
			got := verdicts(results)
			for name, want := range tt.want {
				if got[name] != want {
					t.Errorf("%s: %s, want %s", name, got[name], want)
				}
			}
			if len(got) != len(tt.want) {
				t.Errorf("%d results, want %d", len(got), len(tt.want))
			}
		})
	}
}

func TestLoadBTF_Errors(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	exe, err := os.Executable() // a Go test binary: ELF without .BTF
	if err != nil {
		t.Fatal(err)
	}
	exeBytes, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	raw := rawBTF(t, btfU32)
	tests := []struct {
		name    string
		path    string
		wantIs  error
		wantMsg string
	}{
		{"missing file", filepath.Join(dir, "missing"), fs.ErrNotExist, "no such file"},
		{"directory", dir, ErrNotBTF, "a directory, not a regular file"},
		{"empty file", write("empty", nil), ErrNotBTF, "only 0 bytes"},
		{"text", write("text", []byte("this is not BTF\n")), ErrNotBTF, "no BTF"},
		{"ELF without .BTF", exe, ErrNotBTF, "ELF file without a .BTF section"},
		{"truncated ELF", write("elf", exeBytes[:100]), ErrNotBTF, "ELF"},
		{"truncated raw BTF", write("raw", raw[:len(raw)-3]), ErrNotBTF, "no BTF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, err := LoadBTF(tt.path)
			if spec != nil || !errors.Is(err, tt.wantIs) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("LoadBTF = %v, %v; want an error wrapping %v with %q", spec, err, tt.wantIs, tt.wantMsg)
			}
			if !strings.Contains(err.Error(), tt.path) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestLoadBTF_RawFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "vmlinux.btf")
	if err := os.WriteFile(p, rawBTF(t, btfStructs(t, Layouts())["luo_flb_ser"]), 0o644); err != nil {
		t.Fatal(err)
	}
	spec, err := LoadBTF(p)
	if err != nil {
		t.Fatal(err)
	}
	results, err := CheckBTF(spec)
	if err != nil {
		t.Fatal(err)
	}
	if got := verdicts(results)["luo_flb_ser"]; got != "match" {
		t.Errorf("luo_flb_ser: %s", got)
	}
}

// The running kernel's BTF: a stock kernel has no LUO, so every struct is
// absent; a kernel with LUO must match.
func TestCheckBTF_RunningKernel(t *testing.T) {
	const path = "/sys/kernel/btf/vmlinux"
	if _, err := os.Stat(path); err != nil {
		t.Skipf("no kernel BTF: %v", err)
	}
	spec, err := LoadBTF(path)
	if err != nil {
		t.Fatal(err)
	}
	results, err := CheckBTF(spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if r.Verdict == Mismatch {
			t.Errorf("%s: %v %q", r.Struct.Name, r.Verdict, diffStrings(r.Differences))
		}
		t.Logf("%s: %v", r.Struct.Name, r.Verdict)
	}
}

func FuzzLoadBTFFromReader(f *testing.F) {
	structs := btfStructs(f, Layouts())
	raw := rawBTF(f, structs["luo_flb_ser"], structs["khoser_mem_chunk"])
	f.Add(raw)
	f.Add(raw[:24])
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		spec, err := LoadBTFFromReader(bytes.NewReader(data))
		if err != nil {
			if spec != nil {
				t.Fatal("spec with error")
			}
			return
		}
		results, err := CheckBTF(spec)
		if err == nil && len(results) != len(Layouts()) {
			t.Fatalf("%d results", len(results))
		}
	})
}

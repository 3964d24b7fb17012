package abi

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/kho"
)

// kernelLayouts is Linux 7.0's and 7.2's ABI as their headers declare it,
// written out by hand: "name offset size" per field.
var kernelLayouts = map[string]struct {
	size   int
	fields []string
}{
	"luo_flb_header_ser":     {16, []string{"pgcnt 0 8", "count 8 8"}},
	"luo_flb_ser":            {64, []string{"name 0 48", "data 48 8", "count 56 8"}},
	"luo_session_header_ser": {8, []string{"count 0 8"}},
	"luo_file_set_ser":       {16, []string{"files 0 8", "count 8 8"}},
	"luo_session_ser":        {80, []string{"name 0 64", "file_set_ser 64 16"}},
	"luo_file_ser":           {64, []string{"compatible 0 48", "data 48 8", "token 56 8"}},
	"khoser_mem_chunk_hdr":   {16, []string{"next 0 8", "order 8 4", "num_elms 12 4"}},
	"khoser_mem_bitmap_ptr":  {16, []string{"phys_start 0 8", "bitmap 8 8"}},
	"khoser_mem_chunk":       {4096, []string{"hdr 0 16", "bitmaps 16 4080"}},
	// 7.2
	"luo_ser":              {32, []string{"compatible 0 8", "liveupdate_num 8 8", "sessions_pa 16 8", "flbs_pa 24 8"}},
	"kho_block_header_ser": {16, []string{"next 0 8", "count 8 8"}},
	"kho_kexec_metadata":   {73, []string{"version 0 4", "previous_release 4 65", "kexec_count 69 4"}},
}

func fieldStrings(s Struct) []string {
	out := make([]string, len(s.Fields))
	for i, f := range s.Fields {
		out[i] = f.Name + " " + strconv.Itoa(f.Offset) + " " + strconv.Itoa(f.Size)
	}
	return out
}

func TestLayouts_MatchKernelHeaders(t *testing.T) {
	layouts := Layouts()
	if len(layouts) != len(kernelLayouts) {
		t.Errorf("%d layouts, want %d", len(layouts), len(kernelLayouts))
	}
	seen := map[string]bool{}
	for _, s := range layouts {
		t.Run(s.Name, func(t *testing.T) {
			if seen[s.Name] {
				t.Fatalf("struct %s listed twice", s.Name)
			}
			seen[s.Name] = true
			want, ok := kernelLayouts[s.Name]
			if !ok {
				t.Fatalf("struct %s is not in the kernel's ABI", s.Name)
			}
			if s.Size != want.size {
				t.Errorf("size %d, want %d", s.Size, want.size)
			}
			if got := fieldStrings(s); !slices.Equal(got, want.fields) {
				t.Errorf("fields %q, want %q", got, want.fields)
			}
			if err := s.Consistent(); err != nil {
				t.Error(err)
			}
			wantPacked := !strings.HasPrefix(s.Name, "khoser_")
			if s.Packed != wantPacked {
				t.Errorf("packed %v, want %v (luo.h, block.h and kexec_metadata.h pack their structs, kexec_handover.c does not)", s.Packed, wantPacked)
			}
		})
	}
}

// The kernel's static_assert(sizeof(struct khoser_mem_chunk) == PAGE_SIZE)
// and KHOSER_BITMAP_SIZE tie the chunk header and pointer sizes, which
// pkg/kho keeps private, to what it exports.
func TestLayouts_ChunkFillsPage(t *testing.T) {
	hdr, _ := LookupStruct("khoser_mem_chunk_hdr")
	ptr, _ := LookupStruct("khoser_mem_bitmap_ptr")
	chunk, _ := LookupStruct("khoser_mem_chunk")
	if got := (kernel.PageSize - hdr.Size) / ptr.Size; got != kho.ChunkCapacity {
		t.Errorf("(PAGE_SIZE - %d) / %d = %d, pkg/kho's KHOSER_BITMAP_SIZE is %d", hdr.Size, ptr.Size, got, kho.ChunkCapacity)
	}
	if chunk.Size != kernel.PageSize {
		t.Errorf("khoser_mem_chunk is %d bytes, want one page", chunk.Size)
	}
}

func TestConsistent_FindsGapsOverlapsAndSize(t *testing.T) {
	tests := []struct {
		name string
		s    Struct
		want string // substring of the error; "" for none
	}{
		{"tiles", Struct{Name: "s", Size: 12, Fields: []Field{{"a", 0, 8, "u64"}, {"b", 8, 4, "u32"}}}, ""},
		{"gap", Struct{Name: "s", Size: 16, Fields: []Field{{"a", 0, 8, "u64"}, {"b", 12, 4, "u32"}}}, "field b at offset 12, previous field ends at 8"},
		{"overlap", Struct{Name: "s", Size: 12, Fields: []Field{{"a", 0, 8, "u64"}, {"b", 4, 4, "u32"}}}, "field b at offset 4"},
		{"short", Struct{Name: "s", Size: 16, Fields: []Field{{"a", 0, 8, "u64"}}}, "fields end at 8, size is 16"},
		{"empty field", Struct{Name: "s", Size: 0, Fields: []Field{{"a", 0, 0, "char[0]"}}}, "field a has size 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.s.Consistent()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// kernelConstants are 7.0's values, written out by hand.
var kernelConstants = map[string]string{
	"PAGE_SIZE":                      "4096",
	"MAX_PAGE_ORDER":                 "10",
	"KHO_FDT_COMPATIBLE":             `"kho-v1"`,
	"KHO_FDT_MEMORY_MAP_PROP_NAME":   `"preserved-memory-map"`,
	"KHO_FDT_SUB_TREE_PROP_NAME":     `"fdt"`,
	"KHOSER_BITMAP_SIZE":             "255",
	"LUO_FDT_SIZE":                   "4096",
	"LUO_FDT_KHO_ENTRY_NAME":         `"LUO"`,
	"LUO_FDT_COMPATIBLE":             `"luo-v1"`,
	"LUO_FDT_LIVEUPDATE_NUM":         `"liveupdate-number"`,
	"LUO_FDT_SESSION_NODE_NAME":      `"luo-session"`,
	"LUO_FDT_SESSION_COMPATIBLE":     `"luo-session-v2"`,
	"LUO_FDT_SESSION_HEADER":         `"luo-session-header"`,
	"LIVEUPDATE_SESSION_NAME_LENGTH": "64",
	"LUO_SESSION_PGCNT":              "16",
	"LUO_SESSION_MAX":                "819",
	"LIVEUPDATE_HNDL_COMPAT_LENGTH":  "48",
	"LUO_FILE_PGCNT":                 "2",
	"LUO_FILE_MAX":                   "128",
	"LUO_FDT_FLB_NODE_NAME":          `"luo-flb"`,
	"LUO_FDT_FLB_COMPATIBLE":         `"luo-flb-v1"`,
	"LUO_FDT_FLB_HEADER":             `"luo-flb-header"`,
	"LIVEUPDATE_FLB_COMPAT_LENGTH":   "48",
	"LUO_FLB_PGCNT":                  "1",
	"LUO_FLB_MAX":                    "63",
}

func TestConstants_MatchKernel(t *testing.T) {
	got := map[string]string{}
	for _, c := range Constants() {
		if _, dup := got[c.Name]; dup {
			t.Errorf("%s listed twice", c.Name)
		}
		got[c.Name] = c.Value()
		if c.Source == "" {
			t.Errorf("%s has no source", c.Name)
		}
	}
	for name, want := range kernelConstants {
		if got[name] != want {
			t.Errorf("%s = %s, want %s", name, got[name], want)
		}
	}
	for name := range got {
		if _, ok := kernelConstants[name]; !ok {
			t.Errorf("%s is not in the table of kernel values", name)
		}
	}
}

// The limits follow from the layouts as the kernel computes them.
func TestConstants_LimitsFollowFromLayouts(t *testing.T) {
	size := func(name string) int64 {
		s, ok := LookupStruct(name)
		if !ok {
			t.Fatalf("no struct %s", name)
		}
		return int64(s.Size)
	}
	num := func(name string) int64 {
		c, ok := LookupConstant(name)
		if !ok || c.IsText {
			t.Fatalf("no number %s", name)
		}
		return c.Number
	}
	page := num("PAGE_SIZE")
	tests := []struct {
		name      string
		got, want int64
	}{
		{"LUO_FLB_MAX", num("LUO_FLB_MAX"), (num("LUO_FLB_PGCNT")*page - size("luo_flb_header_ser")) / size("luo_flb_ser")},
		{"LUO_SESSION_MAX", num("LUO_SESSION_MAX"), (num("LUO_SESSION_PGCNT")*page - size("luo_session_header_ser")) / size("luo_session_ser")},
		{"LUO_FILE_MAX", num("LUO_FILE_MAX"), num("LUO_FILE_PGCNT") * page / size("luo_file_ser")},
		{"KHOSER_BITMAP_SIZE", num("KHOSER_BITMAP_SIZE"), (page - size("khoser_mem_chunk_hdr")) / size("khoser_mem_bitmap_ptr")},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %d, the layouts give %d", tt.name, tt.got, tt.want)
		}
	}
}

func TestConstant_JSON(t *testing.T) {
	tests := []struct {
		c    Constant
		want string
	}{
		{number("LUO_FLB_MAX", 63, "f.c"), `{"name":"LUO_FLB_MAX","value":63,"source":"f.c"}`},
		{text("LUO_FDT_COMPATIBLE", "luo-v1", "l.h"), `{"name":"LUO_FDT_COMPATIBLE","value":"luo-v1","source":"l.h"}`},
		{text("EMPTY", "", "e.h"), `{"name":"EMPTY","value":"","source":"e.h"}`},
	}
	for _, tt := range tests {
		got, err := json.Marshal(tt.c)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tt.want {
			t.Errorf("got %s, want %s", got, tt.want)
		}
	}
}

func TestCHeader_DeclaresEveryStruct(t *testing.T) {
	h := CHeader()
	for _, s := range Layouts() {
		i := strings.Index(h, "struct "+s.Name+" {\n")
		if i < 0 {
			t.Errorf("no declaration of struct %s", s.Name)
			continue
		}
		body, _, _ := strings.Cut(h[i:], "}")
		for _, f := range s.Fields {
			if !strings.Contains(body, "\t"+declaration(f)+";") {
				t.Errorf("struct %s: no field %q", s.Name, declaration(f))
			}
		}
		attr := "};"
		if s.Packed {
			attr = "} __attribute__((packed));"
		}
		if !strings.HasPrefix(h[i+len(body):], attr) {
			t.Errorf("struct %s does not end with %q", s.Name, attr)
		}
		if assert := "_Static_assert(sizeof(struct " + s.Name + ") == " + strconv.Itoa(s.Size) + ","; !strings.Contains(h, assert) {
			t.Errorf("no %s", assert)
		}
	}
}

func TestDeclaration(t *testing.T) {
	tests := []struct {
		f    Field
		want string
	}{
		{Field{Name: "data", Type: "u64"}, "u64 data"},
		{Field{Name: "name", Type: "char[48]"}, "char name[48]"},
		{Field{Name: "hdr", Type: "struct khoser_mem_chunk_hdr"}, "struct khoser_mem_chunk_hdr hdr"},
		{Field{Name: "bitmaps", Type: "struct khoser_mem_bitmap_ptr[255]"}, "struct khoser_mem_bitmap_ptr bitmaps[255]"},
	}
	for _, tt := range tests {
		if got := declaration(tt.f); got != tt.want {
			t.Errorf("declaration(%+v) = %q, want %q", tt.f, got, tt.want)
		}
	}
}

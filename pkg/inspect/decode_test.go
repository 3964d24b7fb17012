package inspect

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/kho-sim/kho-sim/pkg/fdt"
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/luo"
	"github.com/kho-sim/kho-sim/pkg/meta"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

func TestDecodeSimImage(t *testing.T) {
	path, root := simImage(t, "default", 2)
	rep := Decode(openImage(t, path), root)
	if len(rep.Findings) != 0 {
		t.Fatalf("findings on a good image: %v", rep.Findings)
	}
	if rep.KHO == nil || rep.KHO.Compatible != kho.Compatible || rep.RootError() != nil {
		t.Fatalf("root: %+v, %v", rep.KHO, rep.RootError())
	}
	var names []string
	for _, s := range rep.Subtrees {
		names = append(names, s.Name)
		if s.DTS == "" || s.Size == 0 {
			t.Errorf("subtree %s not read: %+v", s.Name, s)
		}
	}
	if !slices.Equal(names, []string{meta.Name, luo.FDTKHOEntryName}) {
		t.Errorf("subtrees %v, want newest first [kho-sim LUO]", names)
	}
	m, l := rep.KHOSim, rep.LUO
	if m == nil || l == nil || l.FLB == nil || l.Sessions == nil || rep.Memory == nil {
		t.Fatalf("missing parts: meta %v luo %+v memory %v", m, l, rep.Memory)
	}
	if l.Compatible != luo.FDTCompatible || l.LiveupdateNumber != 1 || m.LUONumber != 1 || m.Boot != 1 || m.Boots != 2 || m.Scenario != "default" {
		t.Errorf("luo %+v meta %+v", l, m)
	}
	if len(l.FLB.Entries) != len(m.FLBs) || l.FLB.Count != uint64(len(m.FLBs)) || l.FLB.PageCount != 1 {
		t.Fatalf("FLB table %+v, metadata %+v", l.FLB, m.FLBs)
	}
	for i, e := range l.FLB.Entries {
		if w := m.FLBs[i]; e.Name != w.Name || e.Data != w.Data || e.Count != w.Count || !e.NameTerminated || !w.PayloadOK {
			t.Errorf("FLB %d: table %+v, metadata %+v", i, e, w)
		}
	}
	files := 0
	for _, s := range l.Sessions.Sessions {
		files += len(s.Files)
		if uint64(len(s.Files)) != s.Count {
			t.Errorf("session %q: %d files decoded, count %d", s.Name, len(s.Files), s.Count)
		}
	}
	if files != len(m.Files) || files == 0 {
		t.Errorf("%d files in the sessions, %d in the metadata", files, len(m.Files))
	}
	var sum uint64
	for _, rg := range rep.Memory.Ranges {
		sum += rg.Size
		if rg.End-rg.Start != Hex(rg.Size) || rg.Pages*physmem.PageSize != rg.Size {
			t.Errorf("range %+v inconsistent", rg)
		}
	}
	if sum != rep.Memory.Bytes || rep.Memory.Blocks == 0 {
		t.Errorf("ranges add up to %d bytes, memory says %d in %d blocks", sum, rep.Memory.Bytes, rep.Memory.Blocks)
	}
	// Every structure Decode read lies in preserved memory.
	for _, pa := range []Hex{rep.RootPA, l.FLBsPA, l.SessionsPA, rep.Subtrees[0].PA} {
		if !preserved(rep.Memory, uint64(pa)) {
			t.Errorf("%#x not in the preserved ranges %+v", uint64(pa), rep.Memory.Ranges)
		}
	}
}

func preserved(m *Memory, pa uint64) bool {
	for _, rg := range m.Ranges {
		if uint64(rg.Start) <= pa && pa < uint64(rg.End) {
			return true
		}
	}
	return false
}

func TestJSONRoundTrip(t *testing.T) {
	path, root := simImage(t, "default", 2)
	rep := Decode(openImage(t, path), root)
	var buf bytes.Buffer
	if err := WriteJSON(&buf, rep); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatalf("JSON does not parse back: %v\n%s", err, buf.Bytes())
	}
	if !reflect.DeepEqual(&back, rep) {
		t.Errorf("round trip differs:\n%+v\n%+v", back, *rep)
	}
	var doc map[string]any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"schema", "region", "root_pa", "generation", "kho", "subtrees", "luo", "kexec_metadata", "kho_sim", "preserved_memory", "notes", "findings"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("top-level key %q missing", k)
		}
	}
	if f, ok := doc["findings"].([]any); !ok || len(f) != 0 {
		t.Errorf(`"findings" is %#v, want []`, doc["findings"])
	}
	if s, ok := doc["root_pa"].(string); !ok || s != "0x10000000" {
		t.Errorf(`"root_pa" is %#v, want "0x10000000"`, doc["root_pa"])
	}
	flbs := doc["luo"].(map[string]any)["flb"].(map[string]any)["entries"].([]any)
	if e := flbs[0].(map[string]any); e["name"] == "" || e["count"] == nil || e["data"] == nil || e["name_terminated"] != true {
		t.Errorf("FLB entry keys: %v", e)
	}
}

func TestHexJSON(t *testing.T) {
	for _, v := range []Hex{0, 1, 0x10000000, 1<<64 - 1} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var back Hex
		if err := json.Unmarshal(b, &back); err != nil || back != v {
			t.Errorf("%s: back %#x, %v", b, uint64(back), err)
		}
	}
	for _, bad := range []string{`16`, `"16"`, `"0xg"`, `"0x10000000000000000"`} {
		var h Hex
		if err := json.Unmarshal([]byte(bad), &h); err == nil {
			t.Errorf("%s accepted as %#x", bad, uint64(h))
		}
	}
}

// damage describes one way to break a good image; it returns the finding
// text expected and the kernel action.
type damage struct {
	name   string
	apply  func(t *testing.T, r *physmem.Region, rep *Report)
	where  string
	what   string
	kernel string
}

func put64(t *testing.T, r *physmem.Region, pa, v uint64) {
	t.Helper()
	b, err := r.Bytes(pa, 8)
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint64(b, v)
}

func fill(t *testing.T, r *physmem.Region, pa uint64, n int, c byte) {
	t.Helper()
	b, err := r.Bytes(pa, uint64(n))
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = c
	}
}

// replaceInFDT replaces old by new in the subtree's FDT blob in place:
// property values of the same length keep the blob valid.
func replaceInFDT(t *testing.T, r *physmem.Region, rep *Report, subtree string, old, new []byte) {
	t.Helper()
	for _, s := range rep.Subtrees {
		if s.Name != subtree {
			continue
		}
		blob, err := r.Bytes(uint64(s.PA), uint64(s.Size))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Count(blob, old) != 1 {
			t.Fatalf("%q occurs %d times in %s", old, bytes.Count(blob, old), subtree)
		}
		copy(blob[bytes.Index(blob, old):], new)
		return
	}
	t.Fatalf("no subtree %s", subtree)
}

// setProp overwrites the value of the first property called name in the
// subtree's FDT with a value of the same length.
func setProp(t *testing.T, r *physmem.Region, rep *Report, subtree, name string, value []byte) {
	t.Helper()
	for _, s := range rep.Subtrees {
		if s.Name != subtree {
			continue
		}
		blob, err := r.Bytes(uint64(s.PA), uint64(s.Size))
		if err != nil {
			t.Fatal(err)
		}
		be := binary.BigEndian
		strs := blob[be.Uint32(blob[12:]):]
		for off := int(be.Uint32(blob[8:])); off+12 <= len(blob); off += 4 {
			if be.Uint32(blob[off:]) != 3 || int(be.Uint32(blob[off+4:])) != len(value) {
				continue
			}
			nameoff := int(be.Uint32(blob[off+8:]))
			if nameoff < len(strs) && strings.HasPrefix(string(strs[nameoff:]), name+"\x00") {
				copy(blob[off+12:], value)
				return
			}
		}
		t.Fatalf("no property %s of %d bytes in %s", name, len(value), subtree)
	}
	t.Fatalf("no subtree %s", subtree)
}

func le64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

func TestDecodeDamage(t *testing.T) {
	tests := []damage{
		{"FLB count above LUO_FLB_MAX", func(t *testing.T, r *physmem.Region, rep *Report) {
			put64(t, r, uint64(rep.LUO.FLBsPA)+8, 64)
		}, whereFLB, "FLB header count 64 above LUO_FLB_MAX 63", kernel.V70.Does(kernel.ReadsPastPage)},
		{"FLB pgcnt", func(t *testing.T, r *physmem.Region, rep *Report) {
			put64(t, r, uint64(rep.LUO.FLBsPA), 2)
		}, whereFLB, "pgcnt 2, want 1", kernel.V70.Does(kernel.ReadsPastPage)},
		{"FLB name without NUL", func(t *testing.T, r *physmem.Region, rep *Report) {
			fill(t, r, uint64(rep.LUO.FLBsPA)+16, 48, 'A')
		}, whereFLB, "has no NUL in its 48 bytes", kernel.V70.Does(kernel.ReadsPastPage)},
		{"FLB count differs from the metadata", func(t *testing.T, r *physmem.Region, rep *Report) {
			put64(t, r, uint64(rep.LUO.FLBsPA)+16+56, 99)
		}, whereFLB, "count 99, expected", ""},
		{"FLB data unpreserved", func(t *testing.T, r *physmem.Region, rep *Report) {
			put64(t, r, uint64(rep.LUO.FLBsPA)+16+48, r.End()-4096)
		}, whereFLB, "is not in the preserved-memory map", kernel.V70.Does(kernel.UsesUnpreserved)},
		{"FLB page unpreserved", func(t *testing.T, r *physmem.Region, rep *Report) {
			replaceInFDT(t, r, rep, luo.FDTKHOEntryName, le64(uint64(rep.LUO.FLBsPA)), le64(r.End()-4096))
		}, whereFLB, "page not in the preserved-memory map", kernel.V70.Does(kernel.UsesBadAddress)},
		{"LUO compatible", func(t *testing.T, r *physmem.Region, rep *Report) {
			replaceInFDT(t, r, rep, luo.FDTKHOEntryName, []byte("luo-v1\x00"), []byte("luo-v9\x00"))
		}, whereLUO, `LUO FDT compatible "luo-v9", want "luo-v1"`, kernel.V70.Does(kernel.PanicsAtBoot)},
		{"liveupdate-number", func(t *testing.T, r *physmem.Region, rep *Report) {
			setProp(t, r, rep, luo.FDTKHOEntryName, luo.FDTLiveupdateNum, le64(5))
		}, whereLUO, "liveupdate-number 5, want 1", ""},
		{"metadata unreadable", func(t *testing.T, r *physmem.Region, rep *Report) {
			replaceInFDT(t, r, rep, meta.Name, []byte("liveupdate-number\x00"), []byte("liveupdate-numbex\x00"))
		}, whereMeta, `"liveupdate-number"`, ""},
		{"session count", func(t *testing.T, r *physmem.Region, rep *Report) {
			put64(t, r, uint64(rep.LUO.SessionsPA), 1000)
		}, whereSessions, "session header count 1000 above LUO_SESSION_MAX 819", kernel.V70.Does(kernel.ReadsPastBlock)},
		{"duplicate session", func(t *testing.T, r *physmem.Region, rep *Report) {
			b, _ := r.Bytes(uint64(rep.LUO.SessionsPA)+8, 64)
			copy(b, "vm-2\x00")
		}, whereSessions, "repeats the name of session 0 (EEXIST)", kernel.V70.Does(kernel.FailsOpen)},
		{"file count", func(t *testing.T, r *physmem.Region, rep *Report) {
			put64(t, r, uint64(rep.LUO.SessionsPA)+8+72, 129)
		}, whereSessions, "file count 129 above LUO_FILE_MAX 128", kernel.V70.Does(kernel.ReadsPastBlock)},
		{"file block unpreserved", func(t *testing.T, r *physmem.Region, rep *Report) {
			put64(t, r, uint64(rep.LUO.SessionsPA)+8+64, r.End()-8192)
		}, whereSessions, "page not in the preserved-memory map", kernel.V70.Does(kernel.UsesBadAddress)},
		{"files without a block", func(t *testing.T, r *physmem.Region, rep *Report) {
			put64(t, r, uint64(rep.LUO.SessionsPA)+8+64, 0)
		}, whereSessions, "files but no file block", kernel.V70.Does(kernel.WarnsNoFiles)},
		{"file compatible without NUL", func(t *testing.T, r *physmem.Region, rep *Report) {
			fill(t, r, uint64(rep.LUO.Sessions.Sessions[0].FilesPA), 48, 'x')
		}, whereSessions, "has no NUL in its 48 bytes", kernel.V70.Does(kernel.StopsAtFile)},
		{"payload", func(t *testing.T, r *physmem.Region, rep *Report) {
			fill(t, r, uint64(rep.KHOSim.FLBs[0].Data)+200, 1, 0x5a)
		}, wherePayloads, "CRC-32", ""},
		{"memory map empty", func(t *testing.T, r *physmem.Region, rep *Report) {
			put64(t, r, uint64(rep.KHO.MemoryMapPA)+12, 0) // order 0 chunk: num_elms = 0, next = 0
			put64(t, r, uint64(rep.KHO.MemoryMapPA), 0)
		}, whereMap, "not in the preserved-memory map", ""},
		{"memory map loops", func(t *testing.T, r *physmem.Region, rep *Report) {
			put64(t, r, uint64(rep.KHO.MemoryMapPA), uint64(rep.KHO.MemoryMapPA))
		}, whereMap, "loops back", ""},
		{"root compatible", func(t *testing.T, r *physmem.Region, rep *Report) {
			b, _ := r.Bytes(uint64(rep.RootPA), uint64(rep.KHO.Size))
			copy(b[bytes.Index(b, []byte("kho-v1")):], "kho-v9")
		}, whereRoot, `root FDT compatible "kho-v9", want "kho-v1" or "kho-v4"`, kernel.V70.Does(kernel.DisablesRevival)},
	}
	path, root := simImage(t, "default", 2)
	clean := readFile(t, path)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := physmem.New(testBase, bytes.Clone(clean))
			if err != nil {
				t.Fatal(err)
			}
			tt.apply(t, r, Decode(r, root))
			rep := Decode(r, root)
			if !hasFinding(rep, tt.where, tt.what, tt.kernel) {
				t.Fatalf("no %s finding %q (%q) among:\n%s", tt.where, tt.what, tt.kernel, findings(rep))
			}
			var text, js bytes.Buffer
			if err := WriteText(&text, rep); err != nil || !strings.Contains(text.String(), tt.what) {
				t.Errorf("text output lacks the finding (%v):\n%s", err, text.String())
			}
			if err := WriteJSON(&js, rep); err != nil || !json.Valid(js.Bytes()) {
				t.Errorf("JSON: %v", err)
			}
		})
	}
}

func TestDecodeDamageKeepsGoing(t *testing.T) {
	path, root := simImage(t, "default", 2)
	r, err := physmem.New(testBase, readFile(t, path))
	if err != nil {
		t.Fatal(err)
	}
	good := Decode(r, root)
	put64(t, r, uint64(good.LUO.FLBsPA)+8, 64)
	put64(t, r, uint64(good.LUO.SessionsPA)+8+72, 129)
	rep := Decode(r, root)
	if !hasFinding(rep, whereFLB, "count 64", kernel.V70.Does(kernel.ReadsPastPage)) || !hasFinding(rep, whereSessions, "file count 129", kernel.V70.Does(kernel.ReadsPastBlock)) {
		t.Fatalf("want both findings:\n%s", findings(rep))
	}
	if n := len(rep.LUO.FLB.Entries); n != 63 {
		t.Errorf("%d FLB entries shown, want the 63 a page holds", n)
	}
	if rep.KHOSim == nil || rep.Memory == nil || len(rep.LUO.Sessions.Sessions) != len(good.LUO.Sessions.Sessions) {
		t.Errorf("decoding stopped early: %+v", rep)
	}
}

func TestDecodeNoRoot(t *testing.T) {
	r, err := physmem.New(testBase, make([]byte, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		root uint64
		want string
	}{
		{testBase, "no FDT at 0x10000000: bad magic 0x00000000, want 0xd00dfeed"},
		{testBase + 0x1000, "no FDT at 0x10001000: bad magic"},
		{0x1000, "no FDT at 0x1000: outside the region [0x10000000-0x100fffff]"},
		{testBase + 1<<20 - 8, "outside the region"},
		{1<<64 - 8, "outside the region"},
	}
	for _, tt := range tests {
		rep := Decode(r, tt.root)
		err := rep.RootError()
		if rep.KHO != nil || err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("root %#x: %v, want one line containing %q", tt.root, err, tt.want)
		}
		if len(rep.Findings) != 1 {
			t.Errorf("root %#x: findings %v", tt.root, rep.Findings)
		}
	}
	if rep := Decode(nil, testBase); rep.RootError() == nil {
		t.Error("nil region decoded")
	}
}

// TestDecodeKernelHandover builds a handover the way a 7.0 kernel would
// (LUO and another subsystem, no kho-sim child) with pkg/kho and pkg/luo.
func TestDecodeKernelHandover(t *testing.T) {
	r, err := physmem.New(testBase, make([]byte, 4<<20))
	if err != nil {
		t.Fatal(err)
	}
	out, err := kho.NewOutgoing(physmem.NewAllocator(r))
	if err != nil {
		t.Fatal(err)
	}
	core := luo.New(outgoingMemory{out}, luo.Options{})
	luoPA, err := core.SetupOutgoing()
	if err != nil {
		t.Fatal(err)
	}
	if err := out.AddSubtree(luo.FDTKHOEntryName, luoPA); err != nil {
		t.Fatal(err)
	}
	if _, err := core.CreateSession("guest"); err != nil {
		t.Fatal(err)
	}
	b := fdt.NewBuilder(4096)
	_ = b.BeginNode("")
	_ = b.PropertyString("compatible", "memblock-v1")
	_ = b.EndNode()
	blob, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	pa, mem, err := out.AllocPreserve(uint64(len(blob)))
	if err != nil {
		t.Fatal(err)
	}
	copy(mem, blob)
	if err := out.AddSubtree("memblock", pa); err != nil {
		t.Fatal(err)
	}
	if err := core.Serialize(); err != nil {
		t.Fatal(err)
	}
	root, err := out.Finalize()
	if err != nil {
		t.Fatal(err)
	}
	rep := Decode(r, root)
	if len(rep.Findings) != 0 {
		t.Fatalf("findings: %v", rep.Findings)
	}
	if rep.KHOSim != nil || len(rep.Notes) != 1 || !strings.Contains(rep.Notes[0], "kho-sim metadata absent") {
		t.Errorf("metadata %v, notes %q", rep.KHOSim, rep.Notes)
	}
	if len(rep.Subtrees) != 2 || rep.Subtrees[0].Compatible != "memblock-v1" || !strings.Contains(rep.Subtrees[0].DTS, `compatible = "memblock-v1";`) {
		t.Errorf("subtrees %+v", rep.Subtrees)
	}
	if rep.LUO == nil || rep.LUO.FLB == nil || rep.LUO.FLB.Count != 0 || rep.LUO.Sessions == nil ||
		len(rep.LUO.Sessions.Sessions) != 1 || rep.LUO.Sessions.Sessions[0].Name != "guest" {
		t.Errorf("LUO %+v", rep.LUO)
	}
}

// outgoingMemory is luo.Memory on a first boot: nothing incoming to map.
type outgoingMemory struct{ out *kho.Outgoing }

func (m outgoingMemory) AllocPreserve(size uint64) (uint64, []byte, error) {
	return m.out.AllocPreserve(size)
}
func (m outgoingMemory) UnpreserveFree(pa uint64) error { return m.out.UnpreserveFree(pa) }
func (m outgoingMemory) Map(pa, size uint64) ([]byte, error) {
	return nil, kho.ErrNotPreserved
}

func TestTextOutput(t *testing.T) {
	path, root := simImage(t, "default", 2)
	rep := Decode(openImage(t, path), root)
	var buf bytes.Buffer
	if err := WriteText(&buf, rep); err != nil {
		t.Fatal(err)
	}
	text := buf.String()
	want := []string{`compatible = "kho-v1";`, `compatible = "luo-v1";`, `compatible = "kho-sim-v1";`, "== findings: 0 ==",
		"== FLB table at " + rep.LUO.FLBsPA.String() + ": pgcnt 1, count 2 ==", "== preserved memory (bitmap chunks): ", "generation 7.0 (KHO \"kho-v1\", LUO \"luo-v1\")"}
	for _, e := range rep.LUO.FLB.Entries {
		want = append(want, `"`+e.Name+`"`)
	}
	for _, s := range rep.LUO.Sessions.Sessions {
		want = append(want, `session `+string(rune('0'+s.Index))+` "`+s.Name+`"`)
	}
	for _, rg := range rep.Memory.Ranges {
		want = append(want, rg.Start.String()+"-"+Hex(uint64(rg.End)-1).String())
	}
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("text lacks %q", w)
		}
	}
	if t.Failed() {
		t.Log(text)
	}
}

func TestTextQuotesUntrustedNames(t *testing.T) {
	path, root := simImage(t, "default", 2)
	r := openImage(t, path)
	rep := Decode(r, root)
	b, _ := r.Bytes(uint64(rep.LUO.FLBsPA)+16, 48)
	copy(b, "\x1b[2J\x00")
	var buf bytes.Buffer
	if err := WriteText(&buf, Decode(r, root)); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "\x1b") || !strings.Contains(buf.String(), `"\x1b[2J"`) {
		t.Errorf("escape sequence reached the text raw or was not shown quoted")
	}
}

func hasFinding(rep *Report, where, what string, k string) bool {
	for _, f := range rep.Findings {
		if f.Where == where && strings.Contains(f.What, what) && f.Kernel == k {
			return true
		}
	}
	return false
}

func findings(rep *Report) string {
	var b strings.Builder
	for _, f := range rep.Findings {
		b.WriteString(f.String() + "\n")
	}
	return b.String()
}

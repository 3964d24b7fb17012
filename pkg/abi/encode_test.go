package abi

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"slices"
	"testing"

	"github.com/kho-sim/kho-sim/pkg/fdt"
	"github.com/kho-sim/kho-sim/pkg/flb"
	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/luo"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// The encoders write a handover; these tests read it back through Layouts
// and Constants alone, so a layout that disagrees with what pkg/flb,
// pkg/luo or pkg/kho really write fails here.

// view reads one struct of a handover through its Struct description.
type view struct {
	t testing.TB
	s Struct
	b []byte
}

func viewOf(t testing.TB, name string, b []byte) view {
	t.Helper()
	s, ok := LookupStruct(name)
	if !ok {
		t.Fatalf("no layout for struct %s", name)
	}
	if len(b) < s.Size {
		t.Fatalf("struct %s needs %d bytes, have %d", name, s.Size, len(b))
	}
	return view{t, s, b[:s.Size]}
}

// element returns element i of an array of struct name that starts at b.
func element(t testing.TB, name string, b []byte, i int) view {
	t.Helper()
	s, _ := LookupStruct(name)
	if (i+1)*s.Size > len(b) {
		t.Fatalf("%s[%d] lies beyond %d bytes", name, i, len(b))
	}
	return viewOf(t, name, b[i*s.Size:])
}

func (v view) field(name string, size int) []byte {
	v.t.Helper()
	f, ok := v.s.Field(name)
	if !ok {
		v.t.Fatalf("struct %s has no field %s", v.s.Name, name)
	}
	if size > 0 && f.Size != size {
		v.t.Fatalf("struct %s: field %s is %d bytes, read as %d", v.s.Name, name, f.Size, size)
	}
	return v.b[f.Offset : f.Offset+f.Size]
}

func (v view) u64(name string) uint64 { return binary.LittleEndian.Uint64(v.field(name, 8)) }
func (v view) u32(name string) uint32 { return binary.LittleEndian.Uint32(v.field(name, 4)) }

func (v view) str(name string) string {
	b := v.field(name, 0)
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return string(b[:i])
	}
	return string(b)
}

func (v view) sub(name, structName string) view { return viewOf(v.t, structName, v.field(name, 0)) }

// after returns the bytes that follow the struct in b: the array behind a
// header.
func (v view) after(b []byte) []byte { return b[v.s.Size:] }

func constText(t testing.TB, name string) string {
	t.Helper()
	c, ok := LookupConstant(name)
	if !ok || !c.IsText {
		t.Fatalf("no string constant %s", name)
	}
	return c.Text
}

func constNum(t testing.TB, name string) int {
	t.Helper()
	c, ok := LookupConstant(name)
	if !ok || c.IsText {
		t.Fatalf("no number constant %s", name)
	}
	return int(c.Number)
}

// khoMemory is LUO's Memory on top of pkg/kho, as kho-sim runs it.
type khoMemory struct {
	*kho.Outgoing
	region *physmem.Region
}

func (m khoMemory) Map(pa, size uint64) ([]byte, error) { return m.region.Bytes(pa, size) }

const (
	testBase  = 0x40000000
	flbData   = 0xfeedf00dcafe0001
	fileData  = 0x5000
	flbName   = "kho-sim-test-flb-v1"
	handler   = "kho-sim-test-file-v1"
	session   = "session-one"
	firstTok  = 0x11
	secondTok = 0x22
)

// writeHandover runs one outgoing boot: a file handler with one FLB, one
// session with two files, LUO serialization and KHO finalization.
func writeHandover(t testing.TB) (*physmem.Region, *kho.Outgoing, uint64) {
	t.Helper()
	region, err := physmem.New(testBase, make([]byte, 32<<20))
	if err != nil {
		t.Fatal(err)
	}
	out, err := kho.NewOutgoing(physmem.NewAllocator(region))
	if err != nil {
		t.Fatal(err)
	}
	core := luo.New(khoMemory{out, region}, luo.Options{})
	fdtPA, err := core.SetupOutgoing()
	if err != nil {
		t.Fatal(err)
	}
	if err := out.AddSubtree(luo.FDTKHOEntryName, fdtPA); err != nil {
		t.Fatal(err)
	}
	h := &luo.FileHandler{Compatible: handler, Ops: luo.FileOps{
		CanPreserve: func(*luo.FileHandler, any) bool { return true },
		Preserve: func(a *luo.FileOpArgs) error {
			a.SerializedData = fileData + uint64(len(a.File.(string)))
			return nil
		},
		Unpreserve: func(*luo.FileOpArgs) {},
		Retrieve:   func(*luo.FileOpArgs) error { return nil },
		Finish:     func(*luo.FileOpArgs) {},
	}}
	if err := core.RegisterFileHandler(h); err != nil {
		t.Fatal(err)
	}
	f := &flb.FLB{Compatible: flbName, Ops: &flb.Ops{
		Preserve:   func(a *flb.OpArgs) error { a.Data, a.Obj = flbData, "obj"; return nil },
		Unpreserve: func(*flb.OpArgs) {},
		Retrieve:   func(*flb.OpArgs) error { return nil },
		Finish:     func(*flb.OpArgs) {},
	}}
	if err := core.RegisterFLB(h, f); err != nil {
		t.Fatal(err)
	}
	s, err := core.CreateSession(session)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PreserveFile(firstTok, "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.PreserveFile(secondTok, "bb"); err != nil {
		t.Fatal(err)
	}
	if err := core.Serialize(); err != nil {
		t.Fatal(err)
	}
	rootPA, err := out.Finalize()
	if err != nil {
		t.Fatal(err)
	}
	return region, out, rootPA
}

func readFDT(t testing.TB, r *physmem.Region, pa uint64) *fdt.Tree {
	t.Helper()
	head, err := r.Bytes(pa, 40)
	if err != nil {
		t.Fatal(err)
	}
	n, err := fdt.TotalSize(head)
	if err != nil {
		t.Fatal(err)
	}
	blob, err := r.Bytes(pa, uint64(n))
	if err != nil {
		t.Fatal(err)
	}
	tree, err := fdt.Parse(blob)
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

func mapBytes(t testing.TB, r *physmem.Region, pa uint64, n int) []byte {
	t.Helper()
	b, err := r.Bytes(pa, uint64(n))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func u64Prop(t testing.TB, n *fdt.Node, name string) uint64 {
	t.Helper()
	if n == nil {
		t.Fatalf("missing node for property %s", name)
	}
	v, err := n.U64(name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// luoNodes returns the LUO FDT's session and FLB nodes, found by the names
// Constants gives.
func luoNodes(t testing.TB, r *physmem.Region, rootPA uint64) (sessionNode, flbNode *fdt.Node) {
	t.Helper()
	root := readFDT(t, r, rootPA).Root
	if !root.IsCompatible(constText(t, "KHO_FDT_COMPATIBLE")) {
		t.Fatalf("KHO root is not %q", constText(t, "KHO_FDT_COMPATIBLE"))
	}
	luoPA := u64Prop(t, root.Child(constText(t, "LUO_FDT_KHO_ENTRY_NAME")), constText(t, "KHO_FDT_SUB_TREE_PROP_NAME"))
	luoRoot := readFDT(t, r, luoPA).Root
	if !luoRoot.IsCompatible(constText(t, "LUO_FDT_COMPATIBLE")) {
		t.Fatalf("LUO FDT is not %q", constText(t, "LUO_FDT_COMPATIBLE"))
	}
	sessionNode = luoRoot.Child(constText(t, "LUO_FDT_SESSION_NODE_NAME"))
	flbNode = luoRoot.Child(constText(t, "LUO_FDT_FLB_NODE_NAME"))
	if !sessionNode.IsCompatible(constText(t, "LUO_FDT_SESSION_COMPATIBLE")) || !flbNode.IsCompatible(constText(t, "LUO_FDT_FLB_COMPATIBLE")) {
		t.Fatal("LUO FDT nodes missing or with other compatibles")
	}
	return sessionNode, flbNode
}

func TestEncoding_FLBPage(t *testing.T) {
	r, _, rootPA := writeHandover(t)
	_, flbNode := luoNodes(t, r, rootPA)
	page := mapBytes(t, r, u64Prop(t, flbNode, constText(t, "LUO_FDT_FLB_HEADER")), constNum(t, "LUO_FLB_PGCNT")*constNum(t, "PAGE_SIZE"))

	hdr := viewOf(t, "luo_flb_header_ser", page)
	if got, want := hdr.u64("pgcnt"), uint64(constNum(t, "LUO_FLB_PGCNT")); got != want {
		t.Errorf("pgcnt %d, want %d", got, want)
	}
	if got := hdr.u64("count"); got != 1 {
		t.Fatalf("count %d, want 1", got)
	}
	e := element(t, "luo_flb_ser", hdr.after(page), 0)
	if e.str("name") != flbName || e.u64("data") != flbData || e.u64("count") != 2 {
		t.Errorf("entry {%q, %#x, %d}, want {%q, %#x, 2}", e.str("name"), e.u64("data"), e.u64("count"), flbName, uint64(flbData))
	}
	// The page's own reader agrees.
	fe, err := flb.ReadEntry(page, 0)
	if err != nil {
		t.Fatal(err)
	}
	if name, _ := fe.NameString(); name != e.str("name") || fe.Data != e.u64("data") || fe.Count != e.u64("count") {
		t.Errorf("flb.ReadEntry gives {%q, %#x, %d}", name, fe.Data, fe.Count)
	}
}

func TestEncoding_SessionAndFileBlocks(t *testing.T) {
	r, _, rootPA := writeHandover(t)
	sessionNode, _ := luoNodes(t, r, rootPA)
	page := constNum(t, "PAGE_SIZE")
	block := mapBytes(t, r, u64Prop(t, sessionNode, constText(t, "LUO_FDT_SESSION_HEADER")), constNum(t, "LUO_SESSION_PGCNT")*page)

	hdr := viewOf(t, "luo_session_header_ser", block)
	if got := hdr.u64("count"); got != 1 {
		t.Fatalf("session count %d, want 1", got)
	}
	s := element(t, "luo_session_ser", hdr.after(block), 0)
	if s.str("name") != session {
		t.Errorf("session name %q, want %q", s.str("name"), session)
	}
	set := s.sub("file_set_ser", "luo_file_set_ser")
	if got := set.u64("count"); got != 2 {
		t.Fatalf("file count %d, want 2", got)
	}
	files := mapBytes(t, r, set.u64("files"), constNum(t, "LUO_FILE_PGCNT")*page)
	want := []struct {
		token, data uint64
	}{{firstTok, fileData + 1}, {secondTok, fileData + 2}}
	for i, w := range want {
		f := element(t, "luo_file_ser", files, i)
		if f.str("compatible") != handler || f.u64("token") != w.token || f.u64("data") != w.data {
			t.Errorf("file %d: {%q, data %#x, token %#x}, want {%q, %#x, %#x}",
				i, f.str("compatible"), f.u64("data"), f.u64("token"), handler, w.data, w.token)
		}
	}
}

func TestEncoding_MemoryMapChunks(t *testing.T) {
	r, out, rootPA := writeHandover(t)
	root := readFDT(t, r, rootPA).Root
	pa := u64Prop(t, root, constText(t, "KHO_FDT_MEMORY_MAP_PROP_NAME"))
	page := constNum(t, "PAGE_SIZE")
	bitsPerMap := uint64(page * 8)

	var got []kho.Block
	for chunks := 0; pa != 0; chunks++ {
		if chunks > 64 {
			t.Fatal("chunk list does not end")
		}
		chunk := viewOf(t, "khoser_mem_chunk", mapBytes(t, r, pa, page))
		hdr := chunk.sub("hdr", "khoser_mem_chunk_hdr")
		order := uint(hdr.u32("order"))
		n := int(hdr.u32("num_elms"))
		if n > constNum(t, "KHOSER_BITMAP_SIZE") {
			t.Fatalf("num_elms %d", n)
		}
		ptrs := chunk.field("bitmaps", 0)
		for i := range n {
			p := element(t, "khoser_mem_bitmap_ptr", ptrs, i)
			bitmap := mapBytes(t, r, p.u64("bitmap"), page)
			for bit := range bitsPerMap {
				if bitmap[bit/8]&(1<<(bit%8)) != 0 {
					got = append(got, kho.Block{PA: p.u64("phys_start") + bit*(uint64(page)<<order), Order: order})
				}
			}
		}
		pa = hdr.u64("next")
	}
	slices.SortFunc(got, func(a, b kho.Block) int { return cmp.Compare(a.PA, b.PA) })
	want := out.Preserved()
	if len(want) < 4 {
		t.Fatalf("only %d preserved blocks: the handover is too small to test", len(want))
	}
	if !slices.Equal(got, want) {
		t.Errorf("blocks decoded through the layouts:\n%v\nwant pkg/kho's\n%v", got, want)
	}
}

package sim

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/pkg/fdt"
	"github.com/kho-sim/kho-sim/pkg/flb"
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/luo"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// The layout of the captured Linux 7.2.13 handover (testdata/real-7.2): guest/luo preserved these memfds through the
// "memfd-v2" handler, on which CONFIG_LIVEUPDATE_TEST's
// liveupdate_test_register had put the three test FLBs of
// lib/tests/liveupdate.c, whose preserve returns TEST_FLB_MAGIC_BASE + i.
const (
	realHandler  = "memfd-v2"
	realFLBMagic = 0xfeedf00dcafebee0 // TEST_FLB_MAGIC_BASE
	realFLBs     = 3                  // TEST_NFLBS
	// memfdSerSize is sizeof(struct memfd_luo_ser) of 7.2 (u64 pos, size;
	// u32 seals, flags; u64 nr_folios; struct kho_vmalloc of 16 bytes),
	// what memfd_luo_preserve asks kho_alloc_preserve for: one page.
	memfdSerSize = 48
)

type realSession struct {
	name   string
	tokens []uint64
}

// realLayout lists guest/luo's sessions and tokens in creation order.
func realLayout() []realSession {
	return []realSession{
		{"kho-sim-a", []uint64{0x1001, 0x1002, 0x1003}},
		{"kho-sim-b", []uint64{0x2001}},
	}
}

// layoutEntries is what a handover holds of the layout, whatever its
// generation: the FLB page and the raw luo_session_ser and luo_file_ser
// entries (the same structs in 7.0, luo-v2 and 7.2). For 7.2 it also
// keeps the raw blocks and struct luo_ser.
type layoutEntries struct {
	flbPage  []byte
	sessions []sessionEntries
	// 7.2 only.
	ser           []byte
	sessionBlocks [][]byte
}

type sessionEntries struct {
	entry      []byte   // luo_session_ser, SessionEntrySize bytes
	files      [][]byte // luo_file_ser, FileEntrySize bytes each
	fileBlocks [][]byte // 7.2 only
}

// field is a u64 of a structure that holds a physical address, and why it
// cannot match between two kernels. page marks the address of a whole
// preserved block (kho_alloc_preserve), which is page aligned.
type field struct {
	off, size int
	name, why string
	page      bool
}

// Address-valued fields, masked in the comparison. Everything else of the
// structures must be byte-identical, including the bytes after each
// strscpy'd string and after the last entry of a block.

// blockMasks: struct kho_block_header_ser's next is the next block's PA (0
// for the last); count is compared.
func blockMasks() []field {
	return []field{{0, 8, "next", "PA of the next block, allocator dependent", true}}
}

// sessionMasks: struct luo_session_ser's file_set_ser.files; name and
// file_set_ser.count are compared.
func sessionMasks() []field {
	return []field{{64, 8, "files", "PA of the session's first file block, allocator dependent", true}}
}

// fileMasks: struct luo_file_ser's data; compatible and token are compared.
func fileMasks() []field {
	return []field{{48, 8, "data", "the handler's handle: for memfd-v2 the PA of its struct memfd_luo_ser", true}}
}

// serMasks: struct luo_ser's two addresses; compatible and liveupdate_num
// are compared.
func serMasks() []field {
	return []field{
		{16, 8, "sessions_pa", "PA of the first session block", true},
		{24, 8, "flbs_pa", "PA of the FLB page", true},
	}
}

// coldBoot is KHO's memory as LUO sees it after a cold boot: outgoing
// allocations, no incoming handover.
type coldBoot struct{ out *kho.Outgoing }

func (m coldBoot) AllocPreserve(size uint64) (uint64, []byte, error) {
	return m.out.AllocPreserve(size)
}
func (m coldBoot) UnpreserveFree(pa uint64) error { return m.out.UnpreserveFree(pa) }
func (m coldBoot) Map(uint64, uint64) ([]byte, error) {
	return nil, fmt.Errorf("cold boot, no incoming handover: %w", unix.ENODATA)
}

// memfdFD stands for the struct file of one preserved memfd.
type memfdFD struct{ token uint64 }

// buildRealLayout runs kho-sim's model of a cold-booted kernel of
// generation abi through the capture's life: the memfd-v2 handler with the
// three test FLBs, LUO's outgoing state published to KHO, the sessions and
// files of realLayout, then the reboot path (liveupdate_reboot, then KHO's
// memory map). It returns the region and the KHO root's address.
func buildRealLayout(t *testing.T, abi kernel.Generation) (*physmem.Region, uint64) {
	t.Helper()
	r, err := physmem.New(testBase, make([]byte, 16<<20))
	if err != nil {
		t.Fatal(err)
	}
	opts := kho.Options{Generation: abi}
	if opts.Generation == kernel.V72 {
		opts.Release = "7.2.13"
	}
	out, err := kho.NewOutgoingWith(physmem.NewAllocator(r), opts)
	if err != nil {
		t.Fatal(err)
	}
	mem := coldBoot{out}
	core := luo.New(mem, luo.Options{Generation: abi})

	// memfd_luo_preserve keeps the file's state in a preserved block and
	// hands its address over as the file's data.
	handler := &luo.FileHandler{Compatible: realHandler, Ops: luo.FileOps{
		CanPreserve: func(_ *luo.FileHandler, f any) bool { _, ok := f.(memfdFD); return ok },
		Preserve: func(a *luo.FileOpArgs) error {
			pa, _, err := mem.AllocPreserve(memfdSerSize)
			a.SerializedData = pa
			return err
		},
		Unpreserve: func(a *luo.FileOpArgs) { _ = mem.UnpreserveFree(a.SerializedData) },
		Retrieve:   func(*luo.FileOpArgs) error { return unix.EINVAL },
		Finish:     func(*luo.FileOpArgs) {},
	}}
	if err := core.RegisterFileHandler(handler); err != nil {
		t.Fatal(err)
	}
	for i := range realFLBs {
		data := uint64(realFLBMagic) + uint64(i)
		f := &flb.FLB{Compatible: fmt.Sprintf("liveupdate-test-flb-v%d", i), Ops: &flb.Ops{
			Preserve:   func(a *flb.OpArgs) error { a.Data = data; return nil },
			Unpreserve: func(*flb.OpArgs) {},
			Retrieve:   func(*flb.OpArgs) error { return unix.EINVAL },
			Finish:     func(*flb.OpArgs) {},
		}}
		if err := core.RegisterFLB(handler, f); err != nil {
			t.Fatal(err)
		}
	}

	luoPA, err := core.SetupOutgoing()
	if err != nil {
		t.Fatal(err)
	}
	if abi == kernel.V72 {
		err = out.AddBlob(luo.FDTKHOEntryName, luoPA, luo.SerSize)
	} else {
		err = out.AddSubtree(luo.FDTKHOEntryName, luoPA)
	}
	if err != nil {
		t.Fatal(err)
	}

	for _, rs := range realLayout() {
		s, err := core.CreateSession(rs.name)
		if err != nil {
			t.Fatal(err)
		}
		for _, tok := range rs.tokens {
			if err := s.PreserveFile(tok, memfdFD{tok}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := core.Serialize(); err != nil {
		t.Fatal(err)
	}
	root, err := out.Finalize()
	if err != nil {
		t.Fatal(err)
	}
	if w := core.Warnings(); len(w) != 0 {
		t.Fatalf("model warnings %v", w)
	}
	return r, root
}

// read72 reads a 7.2 handover with the strict reader and collects its layout.
func read72(t *testing.T, r *physmem.Region, root uint64) layoutEntries {
	t.Helper()
	h, err := luo.Read(r, root)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if h.Ser == nil || h.FLB == nil || h.Sessions == nil {
		t.Fatalf("no LUO state, sessions or FLB page: %+v", h)
	}
	e := layoutEntries{
		flbPage: bytesAt(t, r, h.FLBsPA, physmem.PageSize),
		ser:     bytesAt(t, r, h.Ser.PA, luo.SerSize),
	}
	for _, b := range h.Sessions.Blocks {
		e.sessionBlocks = append(e.sessionBlocks, bytesAt(t, r, b.PA, physmem.PageSize))
	}
	entries := blockEntries(e.sessionBlocks, luo.SessionEntrySize)
	if len(entries) != len(h.Sessions.Sessions) {
		t.Fatalf("%d session entries in the blocks, the reader found %d sessions", len(entries), len(h.Sessions.Sessions))
	}
	for i, s := range h.Sessions.Sessions {
		se := sessionEntries{entry: entries[i]}
		for _, b := range s.FileBlocks {
			se.fileBlocks = append(se.fileBlocks, bytesAt(t, r, b.PA, physmem.PageSize))
		}
		se.files = blockEntries(se.fileBlocks, luo.FileEntrySize)
		e.sessions = append(e.sessions, se)
	}
	return e
}

// blockEntries returns the entries of a chain of 7.2 blocks, count per block.
func blockEntries(blocks [][]byte, size int) [][]byte {
	var out [][]byte
	for _, b := range blocks {
		n := int(binary.LittleEndian.Uint64(b[8:])) // the reader checked it
		for i := range n {
			out = append(out, b[16+i*size:][:size])
		}
	}
	return out
}

// read70 follows a 7.0 or luo-v2 handover as the next kernel does: the
// "LUO" FDT (luo-session and luo-flb nodes, or luo-abi-header pointing at
// struct luo_ser) to the session block (u64 count, then entries), each
// session's file block and the FLB page.
func read70(t *testing.T, r *physmem.Region, root uint64, abi kernel.Generation) layoutEntries {
	t.Helper()
	in, err := kho.ReadIncoming(r, root)
	if err != nil {
		t.Fatal(err)
	}
	tree, _, err := in.SubtreeFDT(luo.FDTKHOEntryName)
	if err != nil {
		t.Fatal(err)
	}
	var sessPA, flbPA uint64
	if abi == kernel.LUOv2 {
		serPA := u64Prop(t, tree.Root, luo.FDTABIHeader)
		ser, err := luo.ParseSer(kernel.LUOv2, bytesAt(t, r, serPA, luo.SerV2Size))
		if err != nil {
			t.Fatal(err)
		}
		sessPA, flbPA = ser.SessionsPA, ser.FLBsPA
	} else {
		sessPA = u64Prop(t, tree.Root.Child(luo.FDTSessionNode), luo.FDTSessionHeader)
		flbPA = u64Prop(t, tree.Root.Child(luo.FDTFLBNode), luo.FDTFLBHeader)
	}
	e := layoutEntries{flbPage: bytesAt(t, r, flbPA, luo.FLBPageSize)}
	n := binary.LittleEndian.Uint64(bytesAt(t, r, sessPA, luo.SessionHeaderSize))
	if n > luo.SessionMax {
		t.Fatalf("session count %d", n)
	}
	for i := range n {
		se := sessionEntries{entry: bytesAt(t, r, sessPA+luo.SessionHeaderSize+i*luo.SessionEntrySize, luo.SessionEntrySize)}
		files := binary.LittleEndian.Uint64(se.entry[64:])
		count := binary.LittleEndian.Uint64(se.entry[72:])
		if count > luo.FileMax {
			t.Fatalf("session %d: file count %d", i, count)
		}
		for j := range count {
			se.files = append(se.files, bytesAt(t, r, files+j*luo.FileEntrySize, luo.FileEntrySize))
		}
		e.sessions = append(e.sessions, se)
	}
	return e
}

func u64Prop(t *testing.T, n *fdt.Node, name string) uint64 {
	t.Helper()
	if n == nil {
		t.Fatalf("no node for %q", name)
	}
	v, err := n.U64(name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func bytesAt(t *testing.T, r *physmem.Region, pa, n uint64) []byte {
	t.Helper()
	b, err := r.Bytes(pa, n)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(b)
}

// realKernelLayout is the layout the real 7.2 kernel handed over.
func realKernelLayout(t *testing.T) layoutEntries {
	t.Helper()
	r, root := realHandover(t)
	return read72(t, r, root)
}

// diffMasked compares two structures of the same kind byte for byte,
// except the masked fields. For those it checks what both kernels must
// agree on: an address is present (non-zero) in both or in neither, and
// one of a preserved block is page aligned.
func diffMasked(what string, model, kern []byte, masks []field) []string {
	if len(model) != len(kern) {
		return []string{fmt.Sprintf("%s: %d bytes, kernel %d", what, len(model), len(kern))}
	}
	m, k := bytes.Clone(model), bytes.Clone(kern)
	var diffs []string
	for _, f := range masks {
		mv := binary.LittleEndian.Uint64(m[f.off:])
		kv := binary.LittleEndian.Uint64(k[f.off:])
		if (mv == 0) != (kv == 0) {
			diffs = append(diffs, fmt.Sprintf("%s: %s (%s) is %#x, kernel %#x: one of them is null", what, f.name, f.why, mv, kv))
		}
		if f.page && (mv%physmem.PageSize != 0 || kv%physmem.PageSize != 0) {
			diffs = append(diffs, fmt.Sprintf("%s: %s %#x, kernel %#x: want page-aligned blocks", what, f.name, mv, kv))
		}
		clear(m[f.off : f.off+f.size])
		clear(k[f.off : f.off+f.size])
	}
	for i := 0; i < len(m); {
		if m[i] == k[i] {
			i++
			continue
		}
		j := i
		for j < len(m) && m[j] != k[j] {
			j++
		}
		diffs = append(diffs, fmt.Sprintf("%s: bytes [%d, %d): model %x, kernel %x", what, i, j, m[i:j], k[i:j]))
		i = j
	}
	return diffs
}

// compareLayouts checks the FLB page byte for byte and every session and
// file entry except its address fields.
func compareLayouts(t *testing.T, model, kern layoutEntries) {
	t.Helper()
	if !bytes.Equal(model.flbPage, kern.flbPage) {
		for _, d := range diffMasked("FLB page", model.flbPage, kern.flbPage, nil) {
			t.Error(d)
		}
	}
	if len(model.sessions) != len(kern.sessions) {
		t.Fatalf("%d sessions, kernel %d", len(model.sessions), len(kern.sessions))
	}
	for i, ms := range model.sessions {
		ks := kern.sessions[i]
		for _, d := range diffMasked(fmt.Sprintf("session %d entry", i), ms.entry, ks.entry, sessionMasks()) {
			t.Error(d)
		}
		if len(ms.files) != len(ks.files) {
			t.Errorf("session %d: %d file entries, kernel %d", i, len(ms.files), len(ks.files))
			continue
		}
		for j, mf := range ms.files {
			for _, d := range diffMasked(fmt.Sprintf("session %d file %d entry", i, j), mf, ks.files[j], fileMasks()) {
				t.Error(d)
			}
		}
	}
}

// TestRealKernel72_ModelWritesTheSameLayout builds the captured kernel's
// layout with kho-sim's 7.2 model and compares what it hands over with
// what Linux 7.2.13 handed over: the FLB page byte for byte, struct
// luo_ser and every session and file block byte for byte except the
// address fields (see the masks above).
func TestRealKernel72_ModelWritesTheSameLayout(t *testing.T) {
	kern := realKernelLayout(t)
	r, root := buildRealLayout(t, kernel.V72)
	model := read72(t, r, root)

	// The test builds what the capture holds; if either side changes,
	// the comparison below compares something else.
	for name, e := range map[string]layoutEntries{"kernel": kern, "model": model} {
		var got []realSession
		for _, s := range e.sessions {
			rs := realSession{name: string(bytes.TrimRight(s.entry[:luo.SessionNameLen], "\x00"))}
			for _, f := range s.files {
				rs.tokens = append(rs.tokens, binary.LittleEndian.Uint64(f[56:]))
			}
			got = append(got, rs)
		}
		if fmt.Sprint(got) != fmt.Sprint(realLayout()) {
			t.Fatalf("%s layout %v, want %v", name, got, realLayout())
		}
	}

	compareLayouts(t, model, kern)
	// The model boots cold; a real kernel that booted from a handover
	// counts on from the number it was handed (luo_ser.liveupdate_num).
	ser := bytes.Clone(model.ser)
	binary.LittleEndian.PutUint64(ser[8:], uint64(realNumber(t)))
	for _, d := range diffMasked("luo_ser", ser, kern.ser, serMasks()) {
		t.Error(d)
	}
	if len(model.sessionBlocks) != len(kern.sessionBlocks) {
		t.Fatalf("%d session blocks, kernel %d", len(model.sessionBlocks), len(kern.sessionBlocks))
	}
	for i, mb := range model.sessionBlocks {
		masks := slices.Concat(blockMasks(), entryMasks(mb, luo.SessionEntrySize, sessionMasks()))
		for _, d := range diffMasked(fmt.Sprintf("session block %d", i), mb, kern.sessionBlocks[i], masks) {
			t.Error(d)
		}
	}
	for i, ms := range model.sessions {
		ks := kern.sessions[i]
		if len(ms.fileBlocks) != len(ks.fileBlocks) {
			t.Errorf("session %d: %d file blocks, kernel %d", i, len(ms.fileBlocks), len(ks.fileBlocks))
			continue
		}
		for j, mb := range ms.fileBlocks {
			masks := slices.Concat(blockMasks(), entryMasks(mb, luo.FileEntrySize, fileMasks()))
			for _, d := range diffMasked(fmt.Sprintf("session %d file block %d", i, j), mb, ks.fileBlocks[j], masks) {
				t.Error(d)
			}
		}
	}
}

// entryMasks places the masks of one entry on every entry of a 7.2 block.
func entryMasks(block []byte, size int, masks []field) []field {
	var out []field
	n := int(binary.LittleEndian.Uint64(block[8:]))
	for i := range n {
		for _, f := range masks {
			f.off += 16 + i*size
			out = append(out, f)
		}
	}
	return out
}

// TestRealKernel72_FLBPageOfEarlierGenerations builds the same layout
// with the model of the default generation (7.0) and of the luo-v2 step:
// the FLB page format did not change up to 7.2, so their FLB page must be
// the kernel's, byte for byte; and struct luo_session_ser and luo_file_ser
// did not change either, so their entries match but for addresses.
func TestRealKernel72_FLBPageOfEarlierGenerations(t *testing.T) {
	kern := realKernelLayout(t)
	def, err := kernel.Parse("")
	if err != nil {
		t.Fatal(err)
	}
	for _, abi := range []kernel.Generation{def, kernel.LUOv2} {
		t.Run(string(abi), func(t *testing.T) {
			r, root := buildRealLayout(t, abi)
			if g := luo.Detect(mustIncoming(t, r, root)); g.Generation != abi {
				t.Fatalf("model wrote %v, want %s", g, abi)
			}
			compareLayouts(t, read70(t, r, root, abi), kern)
		})
	}
}

func mustIncoming(t *testing.T, r *physmem.Region, root uint64) *kho.Incoming {
	t.Helper()
	in, err := kho.ReadIncoming(r, root)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// rootPageMasked returns the KHO root FDT's page with the addresses in it
// (preserved-memory-map, each child's preserved-data) zeroed, and how many
// it zeroed.
func rootPageMasked(t *testing.T, r *physmem.Region, root uint64) ([]byte, int) {
	t.Helper()
	page := bytesAt(t, r, root, physmem.PageSize)
	e, err := fdt.Open(page)
	if err != nil {
		t.Fatal(err)
	}
	v, err := e.Prop(0, kho.PropMemoryMap)
	if err != nil {
		t.Fatal(err)
	}
	clear(v)
	masked := 1
	subs, err := e.Subnodes(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range subs {
		v, err := e.Prop(off, kho.PropBlobData)
		if err != nil {
			t.Fatal(err)
		}
		clear(v)
		masked++
	}
	return page, masked
}

// TestRealKernel72_RootFDTPage compares the page kho-sim's model leaves
// its KHO root FDT in with the page Linux 7.2.13 handed over, all 4096
// bytes, but for the addresses: the layout libfdt's in-place edits give
// (children newest first, blob-size before preserved-data, the reservation
// map packed to offset 40, strings in the order the edits added them) and
// the sequential writer's strings left at the end of the page.
func TestRealKernel72_RootFDTPage(t *testing.T) {
	kr, kroot := realHandover(t)
	mr, mroot := buildRealLayout(t, kernel.V72)
	kern, kn := rootPageMasked(t, kr, kroot)
	model, mn := rootPageMasked(t, mr, mroot)
	if kn != 3 || mn != 3 {
		t.Fatalf("masked %d addresses in the kernel's page and %d in the model's, want 3 (the map, kexec-metadata, LUO)", kn, mn)
	}
	if !bytes.Equal(model, kern) {
		var diffs []string
		for i := range kern {
			if model[i] != kern[i] && len(diffs) < 16 {
				diffs = append(diffs, fmt.Sprintf("%#x: model %#02x kernel %#02x", i, model[i], kern[i]))
			}
		}
		t.Errorf("the model's root FDT page differs from the kernel's: %s", strings.Join(diffs, ", "))
	}
}

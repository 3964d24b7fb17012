package kho

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/pkg/fdt"
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// handoverV4 builds a kho-v4 handover with blocks of several orders, a
// raw blob child and an FDT child.
func handoverV4(t testing.TB) (*physmem.Region, *Outgoing, uint64) {
	t.Helper()
	r := newRegion(t, 16<<20)
	out, err := NewOutgoingWith(physmem.NewAllocator(r), Options{Generation: kernel.V72, Release: "7.2.13-test", KexecCount: 4})
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []uint64{4096, 100, 3 * 4096, 64 << 10, 2 << 20} {
		if _, _, err := out.AllocPreserve(size); err != nil {
			t.Fatal(err)
		}
	}
	blobPA, blob, err := out.AllocPreserve(32)
	if err != nil {
		t.Fatal(err)
	}
	copy(blob, "luo-v5")
	if err := out.AddBlob("LUO", blobPA, 32); err != nil {
		t.Fatal(err)
	}
	b := fdt.NewBuilder(256)
	_ = b.BeginNode("")
	_ = b.PropertyString("compatible", "kho-sim-v1")
	_ = b.EndNode()
	tree, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	fdtPA, mem, err := out.AllocPreserve(uint64(len(tree)))
	if err != nil {
		t.Fatal(err)
	}
	copy(mem, tree)
	if err := out.AddSubtree("kho-sim", fdtPA); err != nil {
		t.Fatal(err)
	}
	root, err := out.Finalize()
	if err != nil {
		t.Fatal(err)
	}
	return r, out, root
}

func TestV4RoundTrip(t *testing.T) {
	r, out, root := handoverV4(t)
	in, err := ReadIncoming(r, root)
	if err != nil {
		t.Fatal(err)
	}
	if in.Compatible() != CompatibleV4 {
		t.Fatalf("format %q, want %q", in.Compatible(), CompatibleV4)
	}
	if !slices.Equal(in.Blocks(), out.Preserved()) {
		t.Fatalf("incoming blocks %v\noutgoing %v", in.Blocks(), out.Preserved())
	}
	orders := map[uint]bool{}
	for _, b := range in.Blocks() {
		orders[b.Order] = true
	}
	if len(orders) < 4 {
		t.Fatalf("only orders %v: the test should mix orders in one tree", orders)
	}
	if got := in.SubtreeNames(); !slices.Equal(got, []string{"kho-sim", "LUO", KexecMetadataName}) {
		t.Fatalf("children %v, want newest first", got)
	}
	blob, err := in.SubtreeBytes("LUO")
	if err != nil || len(blob) != 32 || string(blob[:6]) != "luo-v5" {
		t.Fatalf("LUO blob %q, %v", blob, err)
	}
	tree, _, err := in.SubtreeFDT("kho-sim")
	if err != nil || !tree.Root.IsCompatible("kho-sim-v1") {
		t.Fatalf("kho-sim FDT: %v", err)
	}
	m, err := in.KexecMetadata()
	if err != nil {
		t.Fatal(err)
	}
	if m != (KexecMetadata{Version: 1, PreviousRelease: "7.2.13-test", KexecCount: 5}) {
		t.Fatalf("kexec-metadata %+v", m)
	}
}

// TestV4ChildLayout checks what a 7.2 kernel reads from a child: blob-size
// before preserved-data, both 8-byte little endian, an empty reservation
// map, and the root FDT page itself preserved.
func TestV4ChildLayout(t *testing.T) {
	r, _, root := handoverV4(t)
	in, err := ReadIncoming(r, root)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range in.Root().Root.Children {
		if len(c.Props) != 2 || c.Props[0].Name != PropBlobSize || c.Props[1].Name != PropBlobData {
			t.Errorf("child %s properties %v, want blob-size then preserved-data", c.Name, c.Props)
		}
		for _, p := range c.Props {
			if len(p.Value) != 8 {
				t.Errorf("child %s %s is %d bytes", c.Name, p.Name, len(p.Value))
			}
		}
	}
	hdr, _ := r.Bytes(root, 40)
	rsv := binary.BigEndian.Uint32(hdr[16:])
	if entry, _ := r.Bytes(root+uint64(rsv), 16); binary.BigEndian.Uint64(entry) != 0 || binary.BigEndian.Uint64(entry[8:]) != 0 {
		t.Errorf("reservation map not empty")
	}
	if _, err := in.Map(root, 4096); err != nil {
		t.Errorf("root FDT page not preserved: %v", err)
	}
}

func TestRadixKey(t *testing.T) {
	tests := []struct {
		pa    uint64
		order uint
		key   uint64
	}{
		{0, 0, 1 << 52},
		{0x10003000, 0, 1<<52 | 0x10003},
		{0x10010000, 1, 1<<51 | 0x8008},
		{0x10400000, 10, 1<<42 | 0x41},
		{0xfffff000, 0, 1<<52 | 0xfffff},
	}
	for _, tt := range tests {
		if got := RadixKey(tt.pa, tt.order); got != tt.key {
			t.Errorf("RadixKey(%#x, %d) = %#x, want %#x", tt.pa, tt.order, got, tt.key)
		}
		pa, order, ok := RadixDecode(tt.key)
		if !ok || pa != tt.pa || order != tt.order {
			t.Errorf("RadixDecode(%#x) = %#x, %d, %v", tt.key, pa, order, ok)
		}
	}
	for _, key := range []uint64{0, 1 << 53, 1 << 63, 1 << 41, 1} {
		if _, _, ok := RadixDecode(key); ok {
			t.Errorf("RadixDecode(%#x) accepted a key with no valid order", key)
		}
	}
}

// TestRadixEncoderHandComputed: on a fresh region at 0x10000000 the tree
// root takes the first page, the root FDT and the kexec-metadata the next
// two, and AllocPreserve(4096) gets 0x10003000. Keys 1<<52|0x10001..0x10003
// give index 2 at level 5, 0 at levels 4 to 2, 2 at level 1 and bits 1-3 of
// the bitmap.
func TestRadixEncoderHandComputed(t *testing.T) {
	r := newRegion(t, 1<<20)
	out, err := NewOutgoingWith(physmem.NewAllocator(r), Options{Generation: kernel.V72})
	if err != nil {
		t.Fatal(err)
	}
	pa, _, err := out.AllocPreserve(4096)
	if err != nil || pa != 0x10003000 {
		t.Fatalf("page at %#x (%v), want 0x10003000", pa, err)
	}
	root, err := out.Finalize()
	if err != nil {
		t.Fatal(err)
	}
	in, err := ReadIncoming(r, root)
	if err != nil {
		t.Fatal(err)
	}
	node, _ := in.Root().Root.U64(PropMemoryMap)
	if node != testBase {
		t.Fatalf("tree root %#x, want the first page %#x", node, testBase)
	}
	for _, idx := range []int{2, 0, 0, 0, 2} {
		table, _ := r.Bytes(node, 4096)
		for i := range 512 {
			v := binary.LittleEndian.Uint64(table[i*8:])
			if (v != 0) != (i == idx) {
				t.Fatalf("table %#x entry %d = %#x; only entry %d should be set", node, i, v, idx)
			}
		}
		node = binary.LittleEndian.Uint64(table[idx*8:])
	}
	bm, _ := r.Bytes(node, 4096)
	if bm[0] != 0x0e || slices.ContainsFunc(bm[1:], func(b byte) bool { return b != 0 }) {
		t.Fatalf("bitmap starts %x, want 0e and nothing else", bm[:8])
	}
	if _, err := in.Map(node, 1); !errors.Is(err, ErrNotPreserved) {
		t.Fatalf("a tree node is preserved: %v", err)
	}
}

// TestRadixDecoderHandBuilt decodes a tree written by hand: one order-0
// page and one order-1 block.
func TestRadixDecoderHandBuilt(t *testing.T) {
	r := newRegion(t, 1<<20)
	page := func(i uint64) uint64 { return testBase + i*4096 }
	// root (page 0): [2] -> order-0 path, [1] -> order-1 path
	poke64(t, r, page(0)+2*8, page(1))
	poke64(t, r, page(1), page(2))
	poke64(t, r, page(2), page(3))
	poke64(t, r, page(3), page(4))
	poke64(t, r, page(4)+2*8, page(5)) // L1 index 0x10003 >> 15 = 2
	poke64(t, r, page(5), 1<<3)        // bit 3: 0x10003
	poke64(t, r, page(0)+1*8, page(6))
	poke64(t, r, page(6), page(7))
	poke64(t, r, page(7), page(8))
	poke64(t, r, page(8), page(9))
	poke64(t, r, page(9)+1*8, page(10)) // L1 index 0x8008 >> 15 = 1
	poke64(t, r, page(10), 1<<8)        // bit 8: 0x10010000 order 1
	m, err := ReadRadix(r, page(0))
	if err != nil {
		t.Fatal(err)
	}
	want := []Block{{PA: 0x10003000, Order: 0}, {PA: 0x10010000, Order: 1}}
	if !slices.Equal(m.Blocks, want) {
		t.Fatalf("decoded %v, want %v", m.Blocks, want)
	}
	if nodes := []uint64{page(0), page(6), page(7), page(8), page(9), page(10), page(1), page(2), page(3), page(4), page(5)}; !slices.Equal(m.Nodes, nodes) {
		t.Fatalf("nodes %#x, want %#x: the root, then each path in index order", m.Nodes, nodes)
	}
}

func TestV4Corruption(t *testing.T) {
	// level-5 table entry of the handover's only path, and the tree root
	treeRoot := func(t *testing.T, r *physmem.Region, root uint64) uint64 { return mapPA(t, r, root) }
	tests := []struct {
		name   string
		damage func(t *testing.T, r *physmem.Region, root uint64)
		want   string
	}{
		{"empty map", func(t *testing.T, r *physmem.Region, root uint64) {
			setRootMap(t, r, root, 0)
		}, "EINVAL"},
		{"node unaligned", func(t *testing.T, r *physmem.Region, root uint64) {
			setRootMap(t, r, root, treeRoot(t, r, root)+8)
		}, "not page aligned"},
		{"node outside region", func(t *testing.T, r *physmem.Region, root uint64) {
			poke64(t, r, treeRoot(t, r, root)+2*8, 0x1000)
		}, "level 4 table"},
		{"node reached twice", func(t *testing.T, r *physmem.Region, root uint64) {
			tr := treeRoot(t, r, root)
			poke64(t, r, tr+3*8, peek64(t, r, tr+2*8))
		}, "reached twice"},
		{"cycle to the root", func(t *testing.T, r *physmem.Region, root uint64) {
			tr := treeRoot(t, r, root)
			l4 := peek64(t, r, tr+2*8)
			poke64(t, r, l4+5*8, tr)
		}, "reached twice"},
		{"no valid order", func(t *testing.T, r *physmem.Region, root uint64) {
			tr := treeRoot(t, r, root)
			poke64(t, r, tr+4*8, peek64(t, r, tr+2*8)) // bit 53 set: no order
			poke64(t, r, tr+2*8, 0)
		}, "encodes no order"},
		{"block outside region", func(t *testing.T, r *physmem.Region, root uint64) {
			tr := treeRoot(t, r, root)
			poke64(t, r, tr+3*8, peek64(t, r, tr+2*8)) // bit 51 joins the address
			poke64(t, r, tr+2*8, 0)
		}, "outside the region"},
		{"blocks overlap", func(t *testing.T, r *physmem.Region, root uint64) {
			// an order-1 block over the root FDT page 0x10001000 and its neighbour
			key := RadixKey(0x10000000, 1)
			tr := treeRoot(t, r, root)
			node := tr
			for level := RadixLevels; level >= 1; level-- {
				slot := node + uint64(radixIndex(key, level))*8
				next := peek64(t, r, slot)
				if next == 0 {
					next = r.End() - uint64(level)*4096 // unused pages at the end
					poke64(t, r, slot, next)
				}
				node = next
			}
			bit := key % (1 << radixBitmapBit)
			b, _ := r.Bytes(node+bit/8, 1)
			b[0] |= 1 << (bit % 8)
		}, "overlap"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _, root := handoverV4(t)
			tt.damage(t, r, root)
			_, err := ReadIncoming(r, root)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func TestV4ChildErrors(t *testing.T) {
	tests := []struct {
		name  string
		child string
		edit  func(t *testing.T, r *physmem.Region, blobPA uint64) // nil: edit the root instead
		prop  string
		value []byte
		read  func(in *Incoming) error
		want  error
		text  string
	}{
		{name: "no such child", child: "nope", read: func(in *Incoming) error { _, err := in.SubtreeBytes("nope"); return err }, want: unix.ENOENT},
		{name: "blob-size missing", child: "LUO", prop: PropBlobSize, value: []byte{1, 2, 3, 4},
			read: func(in *Incoming) error { _, err := in.Subtree("LUO"); return err }, want: unix.EINVAL, text: "blob-size"},
		{name: "blob-size huge", child: "LUO", prop: PropBlobSize, value: le64(1 << 40),
			read: func(in *Incoming) error { _, err := in.SubtreeBytes("LUO"); return err }, want: unix.EINVAL},
		{name: "blob unpreserved", child: "LUO", prop: PropBlobData, value: le64(testBase + 15<<20),
			read: func(in *Incoming) error { _, err := in.SubtreeBytes("LUO"); return err }, text: "not in the preserved-memory map"},
		{name: "FDT longer than its blob", child: "kho-sim", prop: PropBlobSize, value: le64(48),
			read: func(in *Incoming) error { _, _, err := in.SubtreeFDT("kho-sim"); return err }, want: unix.EINVAL, text: "above its blob-size 48"},
		{name: "metadata version", child: KexecMetadataName,
			edit: func(t *testing.T, r *physmem.Region, pa uint64) { pokeLE32(t, r, pa, 2) },
			read: func(in *Incoming) error { _, err := in.KexecMetadata(); return err }, want: unix.EINVAL, text: "version 2"},
		{name: "metadata release without NUL", child: KexecMetadataName,
			edit: func(t *testing.T, r *physmem.Region, pa uint64) {
				b, _ := r.Bytes(pa+4, ReleaseLen)
				for i := range b {
					b[i] = 'x'
				}
			},
			read: func(in *Incoming) error { _, err := in.KexecMetadata(); return err }, want: unix.EINVAL, text: "no NUL"},
		{name: "metadata kexec_count 0", child: KexecMetadataName,
			edit: func(t *testing.T, r *physmem.Region, pa uint64) { pokeLE32(t, r, pa+4+ReleaseLen, 0) },
			read: func(in *Incoming) error { _, err := in.KexecMetadata(); return err }, want: unix.EINVAL, text: "kexec_count 0"},
		{name: "metadata too small", child: KexecMetadataName, prop: PropBlobSize, value: le64(40),
			read: func(in *Incoming) error { _, err := in.KexecMetadata(); return err }, want: unix.EINVAL, text: "too small for v1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _, root := handoverV4(t)
			if tt.prop != "" {
				rewriteChildProp(t, r, root, tt.child, tt.prop, tt.value)
			}
			if tt.edit != nil {
				in, err := ReadIncoming(r, root)
				if err != nil {
					t.Fatal(err)
				}
				pa, err := in.Subtree(tt.child)
				if err != nil {
					t.Fatal(err)
				}
				tt.edit(t, r, pa)
			}
			in, err := ReadIncoming(r, root)
			if err != nil {
				t.Fatal(err)
			}
			err = tt.read(in)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) || !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("got %v, want %v containing %q", err, tt.want, tt.text)
			}
		})
	}
}

func TestV1HasNoBlobsOrMetadata(t *testing.T) {
	r, out, root := handover(t)
	if err := out.AddBlob("LUO2", testBase, 32); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("AddBlob on kho-v1: %v, want EINVAL", err)
	}
	in, err := ReadIncoming(r, root)
	if err != nil {
		t.Fatal(err)
	}
	if in.Compatible() != Compatible {
		t.Fatalf("format %q", in.Compatible())
	}
	if _, err := in.KexecMetadata(); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("kexec-metadata on kho-v1: %v, want ENOENT", err)
	}
	if _, err := NewOutgoingWith(physmem.NewAllocator(newRegion(t, 1<<20)), Options{Generation: "kho-v2"}); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("unknown format: %v, want EINVAL", err)
	}
}

// TestV4AbortAndRefinalize: Abort empties the tree but keeps its address;
// a later Finalize lists exactly what is preserved then.
func TestV4AbortAndRefinalize(t *testing.T) {
	r, out, root := handoverV4(t)
	tr := mapPA(t, r, root)
	if err := out.Abort(); err != nil {
		t.Fatal(err)
	}
	if got, _ := mapPAErr(r, root); got != tr {
		t.Fatalf("tree root moved from %#x to %#x", tr, got)
	}
	// The tree is empty, so not even the root FDT page is preserved.
	if _, err := ReadIncoming(r, root); !errors.Is(err, ErrNotPreserved) {
		t.Fatalf("aborted handover read back: %v, want ErrNotPreserved", err)
	}
	pa, _, _ := out.AllocPreserve(8192)
	if err := out.UnpreserveFree(pa); err != nil {
		t.Fatal(err)
	}
	if _, err := out.Finalize(); err != nil {
		t.Fatal(err)
	}
	in, err := ReadIncoming(r, root)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(in.Blocks(), out.Preserved()) {
		t.Fatalf("after refinalize: %v, want %v", in.Blocks(), out.Preserved())
	}
}

func TestV4RootPassesDTC(t *testing.T) {
	if _, err := exec.LookPath("dtc"); err != nil {
		t.Skip("dtc not installed")
	}
	r, _, root := handoverV4(t)
	blob, _ := r.Bytes(root, 4096)
	cmd := exec.Command("dtc", "-I", "dtb", "-O", "dts")
	cmd.Stdin = strings.NewReader(string(blob))
	outb, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dtc: %v\n%s", err, outb)
	}
	for _, w := range []string{`compatible = "kho-v4"`, "preserved-memory-map", "LUO {", "blob-size = ", "kexec-metadata {"} {
		if !strings.Contains(string(outb), w) {
			t.Errorf("dtc output lacks %q:\n%s", w, outb)
		}
	}
}

// TestV4RandomDamageNeverPanics flips bytes in the tree's pages and the
// root FDT; ReadIncoming may refuse, but never panics or hangs.
func TestV4RandomDamageNeverPanics(t *testing.T) {
	r, out, root := handoverV4(t)
	pages := append([]uint64{out.tree.rootPA, root}, out.tree.nodes...)
	saved := map[uint64][]byte{}
	for _, pa := range pages {
		b, _ := r.Bytes(pa, 4096)
		saved[pa] = slices.Clone(b)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	rejected := 0
	for range 500 {
		for pa, b := range saved {
			mem, _ := r.Bytes(pa, 4096)
			copy(mem, b)
		}
		for range 1 + rng.IntN(4) {
			mem, _ := r.Bytes(pages[rng.IntN(len(pages))], 4096)
			mem[rng.IntN(4096)] ^= byte(1 << rng.IntN(8))
		}
		in, err := ReadIncoming(r, root)
		if err != nil {
			rejected++
			continue
		}
		for _, name := range in.SubtreeNames() {
			_, _ = in.SubtreeBytes(name)
		}
		_, _ = in.KexecMetadata()
	}
	// Both outcomes must occur, or the damage missed what it is meant to hit.
	if rejected == 0 || rejected == 500 {
		t.Fatalf("%d of 500 damaged handovers rejected, want some but not all", rejected)
	}
}

// FuzzReadRadix writes u64 values into the pages of a real tree (the
// hand-computed one of TestRadixEncoderHandComputed: root in page 0, nodes
// in pages 3 to 7) and walks it. Each 11-byte record of the input is a page
// index, a byte offset and a value, so inputs stay small.
func FuzzReadRadix(f *testing.F) {
	r := newRegion(f, 1<<20)
	out, err := NewOutgoingWith(physmem.NewAllocator(r), Options{Generation: kernel.V72})
	if err != nil {
		f.Fatal(err)
	}
	if _, err := out.Finalize(); err != nil {
		f.Fatal(err)
	}
	clean, _ := r.Bytes(r.Base(), r.Size())
	clean = slices.Clone(clean)
	record := func(page byte, off uint16, v uint64) []byte {
		b := []byte{page, byte(off), byte(off >> 8)}
		return binary.LittleEndian.AppendUint64(b, v)
	}
	f.Add([]byte{})
	f.Add(record(0, 3*8, peekTable(clean, 0, 2)))                      // a second level-5 entry
	f.Add(record(7, 0, ^uint64(0)))                                    // a full bitmap word
	f.Add(append(record(6, 2*8, testBase), record(0, 8, testBase)...)) // loops to the root
	f.Fuzz(func(t *testing.T, data []byte) {
		buf := slices.Clone(clean)
		for ; len(data) >= 11; data = data[11:] {
			off := (int(data[0])%8)*4096 + int(binary.LittleEndian.Uint16(data[1:]))%(4096-7)
			copy(buf[off:], data[3:11])
		}
		r, err := physmem.New(testBase, buf)
		if err != nil {
			t.Fatal(err)
		}
		m, err := ReadRadix(r, testBase)
		if err != nil {
			return
		}
		blocks := m.Blocks
		for i, b := range blocks {
			if !r.Contains(b.PA, b.Size()) || b.Order > MaxPageOrder || (i > 0 && blocks[i-1].PA+blocks[i-1].Size() > b.PA) {
				t.Fatalf("accepted block %+v", b)
			}
		}
	})
}

func peekTable(mem []byte, page, i int) uint64 {
	return binary.LittleEndian.Uint64(mem[page*4096+i*8:])
}

func BenchmarkFinalizeAndReadV4(b *testing.B) {
	r := newRegion(b, 64<<20)
	out, _ := NewOutgoingWith(physmem.NewAllocator(r), Options{Generation: kernel.V72})
	for range 200 {
		if _, _, err := out.AllocPreserve(16 << 10); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		root, err := out.Finalize()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ReadIncoming(r, root); err != nil {
			b.Fatal(err)
		}
	}
}

func le64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

func peek64(t *testing.T, r *physmem.Region, pa uint64) uint64 {
	t.Helper()
	b, err := r.Bytes(pa, 8)
	if err != nil {
		t.Fatal(err)
	}
	return binary.LittleEndian.Uint64(b)
}

func mapPAErr(r *physmem.Region, root uint64) (uint64, error) {
	blob, err := r.Bytes(root, 4096)
	if err != nil {
		return 0, err
	}
	tree, err := fdt.Parse(blob[:binary.BigEndian.Uint32(blob[4:])])
	if err != nil {
		return 0, err
	}
	return tree.Root.U64(PropMemoryMap)
}

// setRootMap rewrites the root's preserved-memory-map in place.
func setRootMap(t *testing.T, r *physmem.Region, root, v uint64) {
	t.Helper()
	rewriteRoot(t, r, root, func(tree *fdt.Tree) {
		for i := range tree.Root.Props {
			if tree.Root.Props[i].Name == PropMemoryMap {
				tree.Root.Props[i].Value = le64(v)
			}
		}
	})
}

// rewriteChildProp replaces one property of one root child.
func rewriteChildProp(t *testing.T, r *physmem.Region, root uint64, child, prop string, v []byte) {
	t.Helper()
	rewriteRoot(t, r, root, func(tree *fdt.Tree) {
		c := tree.Root.Child(child)
		if c == nil {
			return
		}
		for i := range c.Props {
			if c.Props[i].Name == prop {
				c.Props[i].Value = v
			}
		}
	})
}

func rewriteRoot(t *testing.T, r *physmem.Region, root uint64, edit func(*fdt.Tree)) {
	t.Helper()
	page, err := r.Bytes(root, 4096)
	if err != nil {
		t.Fatal(err)
	}
	tree, err := fdt.Parse(page[:binary.BigEndian.Uint32(page[4:])])
	if err != nil {
		t.Fatal(err)
	}
	edit(tree)
	blob, err := fdt.Encode(tree)
	if err != nil {
		t.Fatal(err)
	}
	clear(page[copy(page, blob):])
}

// TestV4AllocationsAreFolios: in kho-v4 each kho_alloc_preserve block is
// aligned to its size and preserved as one block of its order, as a folio
// is, even when the lowest free run is not aligned.
// TestAllocationsAreFolios: kho_alloc_preserve is folio_alloc plus
// kho_preserve_folio in 7.0 and 7.2 alike, so every allocation is one
// naturally aligned block of its order.
func TestAllocationsAreFolios(t *testing.T) {
	for _, gen := range []kernel.Generation{kernel.V70, kernel.V72} {
		t.Run(CompatibleOf(gen), func(t *testing.T) {
			r := newRegion(t, 4<<20)
			out, err := NewOutgoingWith(physmem.NewAllocator(r), Options{Generation: gen})
			if err != nil {
				t.Fatal(err)
			}
			before := len(out.Preserved())
			sizes := []uint64{4096, 3 * 4096, 4096, 64 << 10, 100, 2 * 4096, 1 << 20}
			for _, size := range sizes {
				pa, mem, err := out.AllocPreserve(size)
				if err != nil {
					t.Fatal(err)
				}
				if n := uint64(len(mem)); pa%n != 0 {
					t.Errorf("%d bytes at %#x: not aligned to its %d-byte block", size, pa, n)
				}
			}
			if got := len(out.Preserved()) - before; got != len(sizes) {
				t.Fatalf("%d preserved blocks for %d allocations: %v", got, len(sizes), out.Preserved())
			}
			// The gaps alignment leaves are used by later, smaller blocks.
			pa, _, err := out.AllocPreserve(4096)
			if err != nil || pa >= testBase+1<<20 {
				t.Fatalf("a page went to %#x (%v), want a gap below the 1 MiB block", pa, err)
			}
			if _, _, err := out.AllocPreserve(4 << 20); !errors.Is(err, unix.ENOMEM) {
				t.Fatalf("4 MiB in a 4 MiB region already in use: %v, want ENOMEM", err)
			}
		})
	}
}

// TestFindRadixBit finds, for a page inside every preserved block, the bit
// that preserves it, and nothing for pages no block holds.
func TestFindRadixBit(t *testing.T) {
	r, out, root := handoverV4(t)
	in, err := ReadIncoming(r, root)
	if err != nil {
		t.Fatal(err)
	}
	treePA, err := in.Root().Root.U64(PropMemoryMap)
	if err != nil {
		t.Fatal(err)
	}
	held := map[uint64]bool{}
	for _, b := range out.Preserved() {
		last := b.PA + physmem.PageSize<<b.Order - physmem.PageSize
		for _, pa := range []uint64{b.PA, last + 100} {
			rb, ok, err := FindRadixBit(r, treePA, pa)
			if err != nil || !ok || rb.Block != b {
				t.Fatalf("page %#x of %v: %+v, %v, %v", pa, b, rb, ok, err)
			}
			bm, _ := r.Bytes(rb.BitmapPA+rb.Bit/8, 1)
			if bm[0]&(1<<(rb.Bit%8)) == 0 {
				t.Fatalf("bit %d of %#x is clear", rb.Bit, rb.BitmapPA)
			}
		}
		for p := b.PA; p <= last; p += physmem.PageSize {
			held[p] = true
		}
	}
	for p := r.Base(); p < r.End(); p += physmem.PageSize {
		if held[p] {
			continue
		}
		if rb, ok, err := FindRadixBit(r, treePA, p); ok || err != nil {
			t.Fatalf("page %#x is in no block, found %+v, %v", p, rb, err)
		}
	}
	if _, _, err := FindRadixBit(r, r.End(), r.Base()); err == nil {
		t.Fatal("a root outside the region: no error")
	}
}

// TestFindMapBit finds, in both generations' memory maps, the bit that
// preserves a page of every preserved block, and clearing it unpreserves
// exactly that block.
func TestFindMapBit(t *testing.T) {
	for _, gen := range []kernel.Generation{kernel.V70, kernel.V72} {
		t.Run(CompatibleOf(gen), func(t *testing.T) {
			r := newRegion(t, 4<<20)
			out, err := NewOutgoingWith(physmem.NewAllocator(r), Options{Generation: gen})
			if err != nil {
				t.Fatal(err)
			}
			for _, size := range []uint64{4096, 3 * 4096, 64 << 10} {
				if _, _, err := out.AllocPreserve(size); err != nil {
					t.Fatal(err)
				}
			}
			root, err := out.Finalize()
			if err != nil {
				t.Fatal(err)
			}
			in, err := ReadIncoming(r, root)
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range out.Preserved() {
				mb, ok, err := in.FindMapBit(b.End() - 1)
				if err != nil || !ok || mb.Block != b {
					t.Fatalf("block %v: %+v, %v, %v", b, mb, ok, err)
				}
			}
			if mb, ok, err := in.FindMapBit(r.End() - 1); ok || err != nil {
				t.Fatalf("the region's last page is in no block, found %+v, %v", mb, err)
			}
			last := out.Preserved()[len(out.Preserved())-1]
			mb, _, _ := in.FindMapBit(last.PA)
			bm, _ := r.Bytes(mb.BitmapPA+mb.Bit/8, 1)
			bm[0] &^= 1 << (mb.Bit % 8)
			again, err := ReadIncoming(r, root)
			if err != nil {
				t.Fatal(err)
			}
			if got := again.Blocks(); len(got) != len(out.Preserved())-1 || slices.Contains(got, last) {
				t.Fatalf("after clearing %v's bit: %v", last, got)
			}
		})
	}
}

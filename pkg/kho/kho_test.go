package kho

import (
	"encoding/binary"
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/pkg/fdt"
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

const testBase = 0x10000000

func newRegion(t testing.TB, size uint64) *physmem.Region {
	t.Helper()
	r, err := physmem.New(testBase, make([]byte, size))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// handover builds an outgoing KHO with a few allocations and one subtree.
func handover(t testing.TB) (*physmem.Region, *Outgoing, uint64) {
	t.Helper()
	r := newRegion(t, 16<<20)
	out, err := NewOutgoing(physmem.NewAllocator(r))
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []uint64{4096, 100, 3 * 4096, 64 << 10} {
		if _, _, err := out.AllocPreserve(size); err != nil {
			t.Fatal(err)
		}
	}
	pa, _, err := out.AllocPreserve(4096)
	if err != nil {
		t.Fatal(err)
	}
	if err := out.AddSubtree("LUO", pa); err != nil {
		t.Fatal(err)
	}
	root, err := out.Finalize()
	if err != nil {
		t.Fatal(err)
	}
	return r, out, root
}

func TestRoundTrip(t *testing.T) {
	r, out, root := handover(t)
	in, err := ReadIncoming(r, root)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(in.Blocks(), out.Preserved()) {
		t.Fatalf("incoming blocks %v, outgoing %v", in.Blocks(), out.Preserved())
	}
	pa, err := in.Subtree("LUO")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.Map(pa, 4096); err != nil {
		t.Fatalf("preserved page refused: %v", err)
	}
	if _, err := in.Subtree("memblock"); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("missing subtree: %v, want ENOENT", err)
	}
}

func TestAllocPreserveRoundsToOrder(t *testing.T) {
	tests := []struct {
		size  uint64
		order uint
		err   error
	}{
		{1, 0, nil}, {4096, 0, nil}, {4097, 1, nil}, {3 * 4096, 2, nil}, {4 << 20, 10, nil},
		{0, 0, unix.EINVAL}, {4<<20 + 1, 0, unix.E2BIG},
	}
	for _, tt := range tests {
		out, err := NewOutgoing(physmem.NewAllocator(newRegion(t, 16<<20)))
		if err != nil {
			t.Fatal(err)
		}
		pa, mem, err := out.AllocPreserve(tt.size)
		if tt.err != nil {
			if !errors.Is(err, tt.err) {
				t.Errorf("size %d: %v, want %v", tt.size, err, tt.err)
			}
			continue
		}
		if err != nil || uint64(len(mem)) != 4096<<tt.order {
			t.Errorf("size %d: len %d err %v, want order %d", tt.size, len(mem), err, tt.order)
		}
		var sum uint64
		for _, b := range out.Preserved() {
			if b.PA >= pa && b.PA < pa+uint64(len(mem)) {
				sum += b.Size()
			}
		}
		if sum != uint64(len(mem)) {
			t.Errorf("size %d: preserved %d bytes of the block, want %d", tt.size, sum, len(mem))
		}
	}
}

func TestUnpreserveFree(t *testing.T) {
	r := newRegion(t, 1<<20)
	out, _ := NewOutgoing(physmem.NewAllocator(r))
	pa, _, _ := out.AllocPreserve(8192)
	before := len(out.Preserved())
	if err := out.UnpreserveFree(pa); err != nil {
		t.Fatal(err)
	}
	if len(out.Preserved()) >= before {
		t.Fatal("block still preserved")
	}
	if err := out.UnpreserveFree(pa); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("double free: %v", err)
	}
}

func TestMapRefusesUnpreserved(t *testing.T) {
	r, _, root := handover(t)
	in, err := ReadIncoming(r, root)
	if err != nil {
		t.Fatal(err)
	}
	last := r.End() - 4096 // never allocated
	if _, err := in.Map(last, 16); !errors.Is(err, ErrNotPreserved) {
		t.Fatalf("got %v, want ErrNotPreserved", err)
	}
	if _, err := in.Map(r.End(), 16); !errors.Is(err, physmem.ErrOutOfRegion) {
		t.Fatalf("got %v, want ErrOutOfRegion", err)
	}
	b := in.Blocks()[0]
	if _, err := in.Map(b.PA, b.Size()+4096*64); err == nil {
		t.Fatal("a range running past the preserved blocks was mapped")
	}
}

func TestSubtreesNewestFirst(t *testing.T) {
	r := newRegion(t, 1<<20)
	out, _ := NewOutgoing(physmem.NewAllocator(r))
	for i, n := range []string{"LUO", "kho-sim", "memblock"} {
		if err := out.AddSubtree(n, uint64(0x1000*(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	if err := out.AddSubtree("LUO", 5); !errors.Is(err, unix.EEXIST) {
		t.Fatalf("duplicate subtree: %v", err)
	}
	if err := out.RemoveSubtree(0x3000); err != nil {
		t.Fatal(err)
	}
	root, _ := out.Finalize()
	in, err := ReadIncoming(r, root)
	if err != nil {
		t.Fatal(err)
	}
	if got := in.SubtreeNames(); !slices.Equal(got, []string{"kho-sim", "LUO"}) {
		t.Fatalf("children %v", got)
	}
}

// TestMemoryMapLayout checks the 7.0 chunk format field by field.
func TestMemoryMapLayout(t *testing.T) {
	r, out, root := handover(t)
	in, _ := ReadIncoming(r, root)
	mapPA, _ := in.Root().Root.U64(PropMemoryMap)
	var orders []uint32
	for pa := mapPA; pa != 0; {
		c, _ := r.Bytes(pa, 4096)
		orders = append(orders, binary.LittleEndian.Uint32(c[8:]))
		n := binary.LittleEndian.Uint32(c[12:])
		for i := range n {
			start := binary.LittleEndian.Uint64(c[16+16*i:])
			if start%(uint64(preserveBits)<<(orders[len(orders)-1]+pageShift)) != 0 {
				t.Errorf("phys_start %#x not aligned to a bitmap's span", start)
			}
		}
		pa = binary.LittleEndian.Uint64(c[0:])
	}
	if !slices.IsSorted(orders) {
		t.Errorf("chunk orders %v, want ascending", orders)
	}
	want := map[uint32]bool{}
	for _, b := range out.Preserved() {
		want[uint32(b.Order)] = true
	}
	if len(orders) != len(want) {
		t.Errorf("%d chunks for %d orders", len(orders), len(want))
	}
}

func TestRootPassesDTC(t *testing.T) {
	if _, err := exec.LookPath("dtc"); err != nil {
		t.Skip("dtc not installed")
	}
	r, _, root := handover(t)
	blob, _ := r.Bytes(root, 4096)
	cmd := exec.Command("dtc", "-I", "dtb", "-O", "dts")
	cmd.Stdin = strings.NewReader(string(blob))
	outb, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dtc: %v\n%s", err, outb)
	}
	for _, w := range []string{`compatible = "kho-v1"`, "preserved-memory-map", "LUO {", "fdt = "} {
		if !strings.Contains(string(outb), w) {
			t.Errorf("dtc output lacks %q:\n%s", w, outb)
		}
	}
}

func TestIncomingCorruption(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, r *physmem.Region, root uint64)
		want   string
	}{
		{"bad magic", func(t *testing.T, r *physmem.Region, root uint64) { poke32(t, r, root, 0xdeadbeef) }, "disables KHO revival"},
		{"root outside region", nil, "outside"},
		{"chunk loop", func(t *testing.T, r *physmem.Region, root uint64) {
			m := mapPA(t, r, root)
			poke64(t, r, m, m)
		}, "loops back"},
		{"too many elements", func(t *testing.T, r *physmem.Region, root uint64) {
			pokeLE32(t, r, mapPA(t, r, root)+12, ChunkCapacity+1)
		}, "num_elms"},
		{"order too large", func(t *testing.T, r *physmem.Region, root uint64) {
			pokeLE32(t, r, mapPA(t, r, root)+8, 11)
		}, "MAX_PAGE_ORDER"},
		{"block outside region", func(t *testing.T, r *physmem.Region, root uint64) {
			poke64(t, r, mapPA(t, r, root)+16, 0x40000000)
		}, "outside the region"},
		{"bitmap outside region", func(t *testing.T, r *physmem.Region, root uint64) {
			poke64(t, r, mapPA(t, r, root)+24, 0x1000)
		}, "bitmap"},
		{"chunk next outside region", func(t *testing.T, r *physmem.Region, root uint64) {
			poke64(t, r, mapPA(t, r, root), 0x7000)
		}, "chunk"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _, root := handover(t)
			if tt.damage == nil {
				root = 0x1000
			} else {
				tt.damage(t, r, root)
			}
			_, err := ReadIncoming(r, root)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func mapPA(t *testing.T, r *physmem.Region, root uint64) uint64 {
	in, err := ReadIncoming(r, root)
	if err != nil {
		t.Fatal(err)
	}
	pa, _ := in.Root().Root.U64(PropMemoryMap)
	return pa
}

func poke64(t *testing.T, r *physmem.Region, pa, v uint64) {
	b, err := r.Bytes(pa, 8)
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint64(b, v)
}

func pokeLE32(t *testing.T, r *physmem.Region, pa uint64, v uint32) {
	b, err := r.Bytes(pa, 4)
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint32(b, v)
}

func poke32(t *testing.T, r *physmem.Region, pa uint64, v uint32) {
	b, err := r.Bytes(pa, 4)
	if err != nil {
		t.Fatal(err)
	}
	binary.BigEndian.PutUint32(b, v)
}

func BenchmarkFinalizeAndRead(b *testing.B) {
	r := newRegion(b, 64<<20)
	out, _ := NewOutgoing(physmem.NewAllocator(r))
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

// TestRootPageFull fills the root FDT's page with children until it has no
// room: 7.2 (kho-v4) deletes the half-made child and returns ENOMEM; 7.0
// (kho-v1) keeps it without its "fdt" and returns fdt_setprop's
// -FDT_ERR_NOSPACE (-3) unchanged, which reads as -ESRCH. Either way the
// page still holds a valid tree and the earlier children.
func TestRootPageFull(t *testing.T) {
	for _, tt := range []struct {
		gen      kernel.Generation
		want     unix.Errno
		halfMade bool
		initial  int // children kho_init adds: 7.2's kexec-metadata
	}{
		{kernel.V72, unix.ENOMEM, false, 1},
		{kernel.V70, unix.ESRCH, true, 0},
	} {
		t.Run(CompatibleOf(tt.gen), func(t *testing.T) {
			r := newRegion(t, 1<<20)
			out, err := NewOutgoingWith(physmem.NewAllocator(r), Options{Generation: tt.gen})
			if err != nil {
				t.Fatal(err)
			}
			// Long names: the page fills within a few dozen children.
			name := func(i int) string { return strings.Repeat("x", 40) + string(rune('a'+i%26)) + string(rune('a'+i/26)) }
			add := func(i int) error {
				if tt.gen == kernel.V72 {
					return out.AddBlob(name(i), uint64(0x1000*(i+1)), 8)
				}
				return out.AddSubtree(name(i), uint64(0x1000*(i+1)))
			}
			var err2 error
			added := 0
			for i := 0; i < 26*26; i++ {
				if err2 = add(i); err2 != nil {
					break
				}
				added++
			}
			if !errors.Is(err2, tt.want) {
				t.Fatalf("after %d children: %v, want %v", added, err2, tt.want)
			}
			if added < 20 {
				t.Fatalf("only %d children fit in a page", added)
			}
			page, err := r.Bytes(out.RootPA(), physmem.PageSize)
			if err != nil {
				t.Fatal(err)
			}
			tree, err := fdt.Parse(page)
			if err != nil {
				t.Fatalf("root page after the failure: %v", err)
			}
			children := tree.Root.Children
			if n := len(children); n != tt.initial+added+map[bool]int{true: 1}[tt.halfMade] {
				t.Fatalf("%d children after %d additions (half-made kept: %v)", n, added, tt.halfMade)
			}
			if tt.halfMade && len(children[0].Props) != 0 {
				t.Errorf("half-made child %q has %v", children[0].Name, children[0].Props)
			}
			if err := add(0); !errors.Is(err, unix.EEXIST) {
				t.Errorf("re-adding the first child: %v, want EEXIST", err)
			}
		})
	}
}

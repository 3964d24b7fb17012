package gen72

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/kho-sim/kho-sim/pkg/kho"
)

func TestBlockKey(t *testing.T) {
	for _, tt := range []struct {
		b   Block
		key uint64
	}{
		// The kernel's table: order 0 sets bit 52, order 1 bit 51, ...
		{Block{PA: 0, Order: 0}, 1 << 52},
		{Block{PA: 0x39f000, Order: 0}, 1<<52 | 0x39f},
		{Block{PA: 0x200000, Order: 1}, 1<<51 | 0x100},
		{Block{PA: 0x40000000, Order: 10}, 1<<42 | 0x40000000>>22},
		{Block{PA: MaxPhysAddr - PageSize, Order: 0}, 1<<52 | (MaxPhysAddr-PageSize)>>12},
	} {
		if got := tt.b.Key(); got != tt.key {
			t.Errorf("%+v.Key() = %#x, want %#x", tt.b, got, tt.key)
		}
		if got, err := decodeKey(tt.key); err != nil || got != tt.b {
			t.Errorf("decodeKey(%#x) = %+v, %v; want %+v", tt.key, got, err, tt.b)
		}
	}
	for _, key := range []uint64{0, 1, 1 << 53, 1 << 59, 1<<(order0Bit-MaxOrder-1) | 1} {
		if _, err := decodeKey(key); !errors.Is(err, ErrBadOrder) {
			t.Errorf("decodeKey(%#x): %v, want %v", key, err, ErrBadOrder)
		}
	}
}

func TestMemoryMapContains(t *testing.T) {
	m := &MemoryMap{Blocks: []Block{{PA: 0x1000}, {PA: 0x4000, Order: 2}}}
	for _, tt := range []struct {
		pa, n uint64
		want  bool
	}{
		{0x1000, PageSize, true},
		{0x1000, PageSize + 1, false}, // runs past the block
		{0x1fff, 1, true},
		{0x2000, 1, false},
		{0x0fff, 2, false},
		{0x5000, 3 * PageSize, true},
		{0x7fff, 2, false},
		{0x1000, 0, false},
		{^uint64(0), 2, false},
	} {
		if got := m.Contains(tt.pa, tt.n); got != tt.want {
			t.Errorf("Contains(%#x, %d) = %v, want %v", tt.pa, tt.n, got, tt.want)
		}
	}
	if b, ok := m.Find(0x6000); !ok || b.PA != 0x4000 {
		t.Errorf("Find(0x6000) = %+v, %v", b, ok)
	}
	if m.Pages() != 5 {
		t.Errorf("Pages() = %d, want 5", m.Pages())
	}
}

// TestReadMemoryMapBuilt walks a tree built here, with blocks of several
// orders, and checks the walk finds exactly them.
func TestReadMemoryMapBuilt(t *testing.T) {
	want := []Block{{0x1000, 0}, {0x8000, 3}, {0x10000000, 9}, {0x3ffff000, 0}, {1 << 40, 0}}
	s := kho.NewPageStore()
	const root = 0x100000
	next := uint64(root + PageSize)
	s.Add(root, nil)
	for _, b := range want {
		node, key := uint64(root), b.Key()
		for level := treeDepth - 1; level > 0; level-- {
			slot := (key >> uint((level-1)*tableBits+bitmapBits)) % (1 << tableBits) * 8
			child := binary.LittleEndian.Uint64(s.Page(node)[slot:])
			if child == 0 {
				child, next = next, next+PageSize
				s.Add(child, nil)
				binary.LittleEndian.PutUint64(s.Page(node)[slot:], child)
			}
			node = child
		}
		bit := key % (1 << bitmapBits)
		s.Page(node)[bit/8] |= 1 << (bit % 8)
	}
	m, err := ReadMemoryMap(s, root)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Blocks) != len(want) {
		t.Fatalf("blocks %+v, want %+v", m.Blocks, want)
	}
	for i := range want {
		if m.Blocks[i] != want[i] {
			t.Errorf("block %d: %+v, want %+v", i, m.Blocks[i], want[i])
		}
	}
	if uint64(len(m.Nodes)) != (next-root)/PageSize {
		t.Errorf("%d nodes read, %d built", len(m.Nodes), (next-root)/PageSize)
	}
	// An empty tree (just the root) preserves nothing.
	e := kho.NewPageStore()
	e.Add(root, nil)
	if m, err := ReadMemoryMap(e, root); err != nil || len(m.Blocks) != 0 || len(m.Nodes) != 1 {
		t.Errorf("empty tree: %+v, %v", m, err)
	}
}

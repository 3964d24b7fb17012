package gen72

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"sort"
)

// Radix tree geometry (enum kho_radix_consts for 4 KiB pages).
const (
	// order0Bit is KHO_ORDER_0_LOG2: the bit that marks an order-0 key.
	order0Bit = 52
	// tableBits is KHO_TABLE_SIZE_LOG2: 512 u64 entries a node.
	tableBits = 9
	// bitmapBits is KHO_BITMAP_SIZE_LOG2: a leaf is a 32768-bit bitmap.
	bitmapBits = 15
	// treeDepth is KHO_TREE_MAX_DEPTH: levels 5..1 are tables, 0 a bitmap.
	treeDepth = 6
)

// Work limits of ReadMemoryMap.
const (
	// MaxTreeNodes bounds the radix nodes (tables and bitmaps) visited.
	MaxTreeNodes = 1 << 14
	// MaxPreservedBlocks bounds the blocks a memory map may list.
	MaxPreservedBlocks = 1 << 21
	// MaxOrder bounds a block's order (2^40 pages, 4 PiB).
	MaxOrder = 40
)

// Block is one preserved block: 2^Order pages at PA.
type Block struct {
	PA    uint64
	Order uint
}

// Size is the block's length in bytes.
func (b Block) Size() uint64 { return PageSize << b.Order }

// End is the first address after the block.
func (b Block) End() uint64 { return b.PA + b.Size() }

// Key is the radix key of the block, as kho_radix_encode_key computes it.
func (b Block) Key() uint64 {
	return 1<<(order0Bit-b.Order) | b.PA>>(12+b.Order)
}

// decodeKey reverses Key (kho_radix_decode_key), refusing keys that encode
// no order between 0 and MaxOrder or a block beyond MaxPhysAddr.
func decodeKey(key uint64) (Block, error) {
	top := bits.Len64(key) - 1 // -1 for key 0
	if top < 0 || top > order0Bit || order0Bit-top > MaxOrder {
		return Block{}, fmt.Errorf("radix key %#x: %w", key, ErrBadOrder)
	}
	order := uint(order0Bit - top)
	pa := key << (12 + order) // the order bit shifts out
	b := Block{PA: pa, Order: order}
	if pa >= MaxPhysAddr || b.End() > MaxPhysAddr {
		return Block{}, fmt.Errorf("radix key %#x: block %#x order %d: %w", key, pa, order, ErrBadAddress)
	}
	return b, nil
}

// MemoryMap is the preserved memory of a handover, sorted by address, with
// no two blocks overlapping.
type MemoryMap struct {
	Blocks []Block
	// Nodes holds the PA of every radix node read (tables and bitmaps), in
	// walk order. The nodes themselves are not preserved: the previous
	// kernel allocated them with get_zeroed_page, so after the next kernel
	// has booted they are free memory that may already be reused.
	Nodes []uint64
}

// Contains reports whether [pa, pa+n) lies inside a single preserved block.
func (m *MemoryMap) Contains(pa, n uint64) bool {
	if n == 0 || pa+n < pa {
		return false
	}
	i := sort.Search(len(m.Blocks), func(i int) bool { return m.Blocks[i].PA > pa })
	if i == 0 {
		return false
	}
	b := m.Blocks[i-1]
	return pa+n <= b.End()
}

// Find returns the block that contains pa, if any.
func (m *MemoryMap) Find(pa uint64) (Block, bool) {
	if m.Contains(pa, 1) {
		i := sort.Search(len(m.Blocks), func(i int) bool { return m.Blocks[i].PA > pa })
		return m.Blocks[i-1], true
	}
	return Block{}, false
}

// Pages is the total number of preserved pages.
func (m *MemoryMap) Pages() uint64 {
	var n uint64
	for _, b := range m.Blocks {
		n += 1 << b.Order
	}
	return n
}

// ReadMemoryMap walks the radix tree rooted at rootPA the way
// kho_radix_walk_tree does (level 5 down to the level-0 bitmaps) and
// returns the preserved blocks. Every node must be a distinct page-aligned
// page; every set bit must decode to a valid block; blocks may not overlap.
func ReadMemoryMap(mem Memory, rootPA uint64) (*MemoryMap, error) {
	w := walker{mem: mem, seen: make(map[uint64]bool)}
	if err := w.node("radix root (level 5)", rootPA); err != nil {
		return nil, err
	}
	if err := w.table(rootPA, treeDepth-1, 0); err != nil {
		return nil, err
	}
	m := &MemoryMap{Blocks: w.blocks, Nodes: w.nodes}
	sort.Slice(m.Blocks, func(i, j int) bool { return m.Blocks[i].PA < m.Blocks[j].PA })
	for i := 1; i < len(m.Blocks); i++ {
		if prev, b := m.Blocks[i-1], m.Blocks[i]; prev.End() > b.PA {
			return nil, fmt.Errorf("preserved blocks %#x order %d and %#x order %d: %w", prev.PA, prev.Order, b.PA, b.Order, ErrOverlap)
		}
	}
	return m, nil
}

type walker struct {
	mem    Memory
	seen   map[uint64]bool
	nodes  []uint64
	blocks []Block
}

// node admits one more radix node page.
func (w *walker) node(what string, pa uint64) error {
	if err := checkPage(what, pa); err != nil {
		return err
	}
	if w.seen[pa] {
		return fmt.Errorf("%s at %#x reached twice: %w", what, pa, ErrLoop)
	}
	if len(w.nodes) >= MaxTreeNodes {
		return fmt.Errorf("%s at %#x: more than %d radix nodes: %w", what, pa, MaxTreeNodes, ErrTooMany)
	}
	w.seen[pa] = true
	w.nodes = append(w.nodes, pa)
	return nil
}

// table walks the level-level table at pa; prefix holds the key bits of the
// levels above.
func (w *walker) table(pa uint64, level int, prefix uint64) error {
	b, err := read(w.mem, fmt.Sprintf("radix level %d", level), pa, PageSize)
	if err != nil {
		return err
	}
	// Copy the entries: Memory may alias, and recursion reads more pages.
	var entries [PageSize / 8]uint64
	for i := range entries {
		entries[i] = binary.LittleEndian.Uint64(b[i*8:])
	}
	shift := uint((level-1)*tableBits + bitmapBits)
	for i, child := range entries {
		if child == 0 {
			continue
		}
		key := prefix | uint64(i)<<shift
		what := fmt.Sprintf("radix level %d (entry %d of %#x)", level-1, i, pa)
		if err := w.node(what, child); err != nil {
			return err
		}
		if level == 1 {
			err = w.leaf(child, key)
		} else {
			err = w.table(child, level-1, key)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// leaf collects the blocks of the bitmap at pa.
func (w *walker) leaf(pa uint64, prefix uint64) error {
	b, err := read(w.mem, "radix bitmap", pa, PageSize)
	if err != nil {
		return err
	}
	for word := 0; word < PageSize/8; word++ {
		v := binary.LittleEndian.Uint64(b[word*8:])
		for v != 0 {
			bit := uint64(bits.TrailingZeros64(v))
			v &= v - 1
			blk, err := decodeKey(prefix | uint64(word)*64 | bit)
			if err != nil {
				return fmt.Errorf("radix bitmap at %#x bit %d: %w", pa, uint64(word)*64+bit, err)
			}
			if len(w.blocks) >= MaxPreservedBlocks {
				return fmt.Errorf("radix bitmap at %#x: more than %d preserved blocks: %w", pa, MaxPreservedBlocks, ErrTooMany)
			}
			w.blocks = append(w.blocks, blk)
		}
	}
	return nil
}

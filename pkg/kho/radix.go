package kho

import (
	"encoding/binary"
	"fmt"
	"math/bits"

	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// RadixKey models kho_radix_encode_key: the order as a single bit above the
// physical address shifted down by its order.
func RadixKey(pa uint64, order uint) uint64 {
	return 1<<(radixOrder0Bit-order) | pa>>(pageShift+order)
}

// RadixDecode models kho_radix_decode_key. ok is false for a key that
// encodes no order kho-sim accepts (its highest bit is not the order bit of
// an order up to MaxPageOrder); the kernel would compute a nonsense order.
func RadixDecode(key uint64) (pa uint64, order uint, ok bool) {
	top := bits.Len64(key) // fls64
	if top == 0 || top > radixOrder0Bit+1 || top < radixOrder0Bit+1-MaxPageOrder {
		return 0, 0, false
	}
	order = uint(radixOrder0Bit + 1 - top)
	return key << (pageShift + order), order, true
}

// radixIndex is kho_radix_get_table_index for levels 1..RadixLevels.
func radixIndex(key uint64, level int) int {
	return int(key>>((level-1)*radixTableBits+radixBitmapBit)) % radixTableSize
}

// radixTree is the outgoing tree: nodes allocated from the region but not
// preserved, as the kernel allocates them outside preserved memory.
type radixTree struct {
	alloc  *physmem.Allocator
	rootPA uint64
	root   []byte
	nodes  []uint64 // every node but the root, to free them again
}

func newRadixTree(alloc *physmem.Allocator) (*radixTree, error) {
	pa, mem, err := alloc.Alloc(physmem.PageSize, false)
	if err != nil {
		return nil, fmt.Errorf("kho: allocate radix tree root: %w", err)
	}
	return &radixTree{alloc: alloc, rootPA: pa, root: mem}, nil
}

// reset empties the tree, keeping its root page (whose address the root
// FDT already holds).
func (t *radixTree) reset() {
	for _, pa := range t.nodes {
		_ = t.alloc.Free(pa) // nodes this tree allocated itself; Free cannot miss them
	}
	t.nodes = nil
	clear(t.root)
}

// add models kho_radix_add_page: missing nodes on the path are allocated.
func (t *radixTree) add(pa uint64, order uint) error {
	key := RadixKey(pa, order)
	node := t.root
	for level := RadixLevels; level >= 1; level-- {
		slot := node[radixIndex(key, level)*8:]
		next := binary.LittleEndian.Uint64(slot)
		if next != 0 {
			mem, err := t.alloc.Region().Bytes(next, physmem.PageSize)
			if err != nil {
				return fmt.Errorf("kho: radix node %#x: %w", next, err)
			}
			node = mem
			continue
		}
		npa, mem, err := t.alloc.Alloc(physmem.PageSize, false)
		if err != nil {
			return fmt.Errorf("kho: allocate radix node: %w", err)
		}
		t.nodes = append(t.nodes, npa)
		binary.LittleEndian.PutUint64(slot, npa)
		node = mem
	}
	bit := key % (1 << radixBitmapBit)
	node[bit/8] |= 1 << (bit % 8)
	return nil
}

// Work limits of the radix walk: a hostile tree in a large memory (a dump,
// /dev/mem) could otherwise make the walk visit every page.
const (
	// MaxRadixNodes bounds the tables and bitmaps one walk visits.
	MaxRadixNodes = 1 << 14
	// MaxPreservedBlocks bounds the blocks a memory map may list.
	MaxPreservedBlocks = 1 << 21
)

// RadixMap is a kho-v4 memory map as read: the preserved blocks, sorted by
// address and not overlapping, and every node of the tree in walk order.
// The nodes themselves are not preserved: the previous kernel allocated
// them as ordinary pages, which the next kernel reuses once it has read
// the tree.
type RadixMap struct {
	Blocks []Block
	Nodes  []uint64
}

// ReadRadix models kho_radix_walk_tree over an untrusted tree rooted at
// rootPA: every node must be a page of mem, no node may be reached twice
// (a real tree never shares one, and sharing would let a small image make
// the walk exponential), at most MaxRadixNodes nodes and
// MaxPreservedBlocks blocks, and every set bit must decode to a block
// inside mem's range. Blocks come back sorted by address and checked for
// overlap.
func ReadRadix(mem Memory, rootPA uint64) (*RadixMap, error) {
	w := radixWalker{r: mem, seen: map[uint64]bool{}}
	if err := w.node(rootPA, RadixLevels, 0); err != nil {
		return nil, err
	}
	if err := sortBlocks(w.blocks); err != nil {
		return nil, err
	}
	return &RadixMap{Blocks: w.blocks, Nodes: w.nodes}, nil
}

type radixWalker struct {
	r      Memory
	seen   map[uint64]bool
	nodes  []uint64
	blocks []Block
}

// RadixPointerAction is what the 7.2 kernel does with a radix-tree pointer
// it cannot use: kho_mem_retrieve follows every table entry with
// phys_to_virt unchecked, in early boot. Observed: a pointer beyond RAM,
// or one 2 KiB off its page inside the handover, faults before the console
// is up and the machine resets.
const RadixPointerAction = "the 7.2 kernel follows it unchecked in kho_mem_retrieve and faults before its console comes up"

// RadixOutsideAction is what it does with a pointer to memory outside the
// handover that may be RAM: it reads whatever lies there as a table or
// bitmap. Observed: zeros there and it takes the handover (bitflip:27,
// :40); pointers there and it follows them, beyond RAM into a fault
// (bitflip:19, the real-mode interrupt vectors at 0x300).
const RadixOutsideAction = "the 7.2 kernel follows it unchecked in kho_mem_retrieve into memory the handover does not hold, and what lies there decides: zeros it skips, anything else it follows, beyond RAM into a fault before its console"

func (w *radixWalker) page(pa uint64, what string) ([]byte, error) {
	inside := contains(w.r, pa, physmem.PageSize)
	if pa%physmem.PageSize != 0 && inside {
		return nil, fmt.Errorf("radix %s %#x is not page aligned (%s)", what, pa, RadixPointerAction)
	}
	if w.seen[pa] {
		return nil, fmt.Errorf("radix %s %#x is reached twice (the tree is not a tree)", what, pa)
	}
	if len(w.nodes) >= MaxRadixNodes {
		return nil, fmt.Errorf("radix %s %#x: more than %d radix nodes", what, pa, MaxRadixNodes)
	}
	w.seen[pa] = true
	w.nodes = append(w.nodes, pa)
	if inside {
		mem, err := w.r.Bytes(pa, physmem.PageSize)
		if err == nil && len(mem) != physmem.PageSize {
			err = fmt.Errorf("read %d bytes: %w", len(mem), ErrUnavailable)
		}
		if err != nil {
			// Inside the handover's range but not held (a dump without
			// the page): the content is unknown.
			return nil, fmt.Errorf("radix %s %#x: %w (%s)", what, pa, err, RadixOutsideAction)
		}
		return mem, nil
	}
	err := fmt.Errorf("outside the region %#x-%#x: %w", w.r.Range().Start, w.r.Range().End()-1, ErrUnavailable)
	if Outside(w.r, pa, physmem.PageSize) == OutsideBeyondRAM {
		return nil, fmt.Errorf("radix %s %#x: %w, beyond the next kernel's RAM (%s)", what, pa, err, RadixPointerAction)
	}
	unaligned := ""
	if pa%physmem.PageSize != 0 {
		unaligned = ", not page aligned"
	}
	return nil, fmt.Errorf("radix %s %#x: %w%s (%s)", what, pa, err, unaligned, RadixOutsideAction)
}

// node walks a table at level (RadixLevels..1) whose keys start with start.
func (w *radixWalker) node(pa uint64, level int, start uint64) error {
	table, err := w.page(pa, fmt.Sprintf("level %d table", level))
	if err != nil {
		return err
	}
	for i := range radixTableSize {
		next := binary.LittleEndian.Uint64(table[i*8:])
		if next == 0 {
			continue
		}
		key := start | uint64(i)<<((level-1)*radixTableBits+radixBitmapBit)
		if level > 1 {
			err = w.node(next, level-1, key)
		} else {
			err = w.leaf(next, key)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (w *radixWalker) leaf(pa, start uint64) error {
	bm, err := w.page(pa, "bitmap")
	if err != nil {
		return err
	}
	return forSetBits(bm, func(bit uint64) error {
		key := start | bit
		bpa, order, ok := RadixDecode(key)
		if !ok {
			return fmt.Errorf("radix bitmap %#x: key %#x encodes no order up to MAX_PAGE_ORDER %d", pa, key, MaxPageOrder)
		}
		b := Block{PA: bpa, Order: order}
		if err := checkInside(w.r, b); err != nil {
			return err
		}
		if len(w.blocks) >= MaxPreservedBlocks {
			return fmt.Errorf("radix bitmap %#x: more than %d preserved blocks", pa, MaxPreservedBlocks)
		}
		w.blocks = append(w.blocks, b)
		return nil
	})
}

// RadixBit is where a memory map records one preserved block: the bitmap
// page (a radix leaf, or a 7.0 chunk's bitmap), the bit in it and the
// block it stands for.
type RadixBit struct {
	BitmapPA uint64
	Bit      uint64
	Block    Block
}

// FindRadixBit looks in the radix tree rooted at rootPA for the preserved
// block that holds pa, trying every order from 0 up, as a reader that
// needs the page would. ok is false when no block holds pa. Nodes are read
// through r only; one outside it is an error.
func FindRadixBit(r Memory, rootPA, pa uint64) (rb RadixBit, ok bool, err error) {
	for order := uint(0); order <= MaxPageOrder; order++ {
		block := pa &^ (physmem.PageSize<<order - 1)
		key := RadixKey(block, order)
		node := rootPA
		for level := RadixLevels; level >= 1 && node != 0; level-- {
			mem, err := r.Bytes(node, physmem.PageSize)
			if err != nil {
				return RadixBit{}, false, fmt.Errorf("kho: radix node %#x: %w", node, err)
			}
			node = binary.LittleEndian.Uint64(mem[radixIndex(key, level)*8:])
		}
		if node == 0 {
			continue
		}
		bit := key % (1 << radixBitmapBit)
		b, err := r.Bytes(node+bit/8, 1)
		if err != nil {
			return RadixBit{}, false, fmt.Errorf("kho: radix bitmap %#x: %w", node, err)
		}
		if b[0]&(1<<(bit%8)) != 0 {
			return RadixBit{BitmapPA: node, Bit: bit, Block: Block{PA: block, Order: order}}, true, nil
		}
	}
	return RadixBit{}, false, nil
}

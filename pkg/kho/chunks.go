package kho

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"

	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// The 7.0 ("kho-v1") preserved-memory map: a linked list of chunk pages,
// each {u64 next; u32 order; u32 num_elms} and num_elms {u64 phys_start;
// u64 bitmap} pointers to one-page bitmaps of 2^order-page blocks
// (kho_mem_serialize and kho_mem_deserialize). Written and read here only.

// serializeMemoryMap models kho_mem_serialize: one run of chunks per order,
// ascending; within an order, one bitmap per PRESERVE_BITS blocks, ascending.
func (o *Outgoing) serializeMemoryMap() (uint64, error) {
	type key struct {
		order uint
		index uint64
	}
	type bitmap struct {
		pa  uint64
		mem []byte
	}
	bitmaps := map[key]bitmap{}
	var keys []key
	for pfn, order := range o.preserved {
		high := pfn >> order
		k := key{order, high / preserveBits}
		bm, ok := bitmaps[k]
		if !ok {
			pa, mem, err := o.alloc.Alloc(physmem.PageSize, false)
			if err != nil {
				return 0, fmt.Errorf("kho: allocate memory map bitmap: %w", err)
			}
			o.serialized = append(o.serialized, pa)
			bm = bitmap{pa, mem}
			bitmaps[k] = bm
			keys = append(keys, k)
		}
		bit := high % preserveBits
		bm.mem[bit/8] |= 1 << (bit % 8)
	}
	slices.SortFunc(keys, func(a, b key) int {
		if a.order != b.order {
			return int(a.order) - int(b.order)
		}
		return cmp.Compare(a.index, b.index)
	})
	var first uint64
	var chunk []byte
	var n uint32
	for i, k := range keys {
		if chunk == nil || k.order != keys[i-1].order || n == ChunkCapacity {
			pa, mem, err := o.alloc.Alloc(physmem.PageSize, false)
			if err != nil {
				return 0, fmt.Errorf("kho: allocate memory map chunk: %w", err)
			}
			o.serialized = append(o.serialized, pa)
			binary.LittleEndian.PutUint32(mem[8:], uint32(k.order))
			if chunk == nil {
				first = pa
			} else {
				binary.LittleEndian.PutUint64(chunk[0:], pa)
			}
			chunk, n = mem, 0
		}
		elm := chunk[chunkHeaderSize+int(n)*bitmapPtrSize:]
		binary.LittleEndian.PutUint64(elm[0:], (k.index*preserveBits)<<(k.order+pageShift))
		binary.LittleEndian.PutUint64(elm[8:], bitmaps[k].pa)
		n++
		binary.LittleEndian.PutUint32(chunk[12:], n)
	}
	return first, nil
}

func readMemoryMap(r Memory, pa uint64) ([]Block, []uint64, error) {
	var blocks []Block
	var pages []uint64
	seen := map[uint64]bool{}
	for pa != 0 {
		if seen[pa] {
			return nil, nil, fmt.Errorf("chunk list loops back to %#x (the 7.0 kernel loops forever in kho_mem_deserialize)", pa)
		}
		seen[pa] = true
		pages = append(pages, pa)
		if pa%physmem.PageSize != 0 {
			return nil, nil, fmt.Errorf("chunk %#x is not page aligned", pa)
		}
		chunk, err := r.Bytes(pa, physmem.PageSize)
		if err != nil {
			return nil, nil, fmt.Errorf("chunk: %w", err)
		}
		next := binary.LittleEndian.Uint64(chunk[0:])
		order := binary.LittleEndian.Uint32(chunk[8:])
		n := binary.LittleEndian.Uint32(chunk[12:])
		if order > MaxPageOrder {
			return nil, nil, fmt.Errorf("chunk %#x: order %d above MAX_PAGE_ORDER %d", pa, order, MaxPageOrder)
		}
		if n > ChunkCapacity {
			return nil, nil, fmt.Errorf("chunk %#x: num_elms %d above %d (the kernel would read past the chunk)", pa, n, ChunkCapacity)
		}
		for i := range n {
			elm := chunk[chunkHeaderSize+i*bitmapPtrSize:]
			start := binary.LittleEndian.Uint64(elm[0:])
			bmPA := binary.LittleEndian.Uint64(elm[8:])
			pages = append(pages, bmPA)
			bm, err := r.Bytes(bmPA, physmem.PageSize)
			if err != nil {
				return nil, nil, fmt.Errorf("chunk %#x element %d: bitmap: %w", pa, i, err)
			}
			blocks, err = appendBits(blocks, r, start, uint(order), bm)
			if err != nil {
				return nil, nil, fmt.Errorf("chunk %#x element %d: %w", pa, i, err)
			}
		}
		pa = next
	}
	if err := sortBlocks(blocks); err != nil {
		return nil, nil, err
	}
	return blocks, pages, nil
}

func appendBits(blocks []Block, r Memory, start uint64, order uint, bm []byte) ([]Block, error) {
	err := forSetBits(bm, func(bit uint64) error {
		b := Block{PA: start + bit<<(order+pageShift), Order: order}
		if b.PA < start {
			return errOutside(r, b)
		}
		if err := checkInside(r, b); err != nil {
			return err
		}
		blocks = append(blocks, b)
		return nil
	})
	return blocks, err
}

// forSetBits calls fn with the number of every set bit of bm, a bitmap of
// little-endian u64 words as the kernel's bitmap functions keep it, in
// order, and stops at fn's first error.
func forSetBits(bm []byte, fn func(bit uint64) error) error {
	for w := 0; w+8 <= len(bm); w += 8 {
		word := binary.LittleEndian.Uint64(bm[w:])
		for word != 0 {
			bit := uint64(w*8 + bits.TrailingZeros64(word))
			word &= word - 1
			if err := fn(bit); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkInside refuses a preserved block outside the region read: the
// kernel would reserve it blindly.
func checkInside(r Memory, b Block) error {
	if !contains(r, b.PA, b.Size()) {
		return errOutside(r, b)
	}
	return nil
}

func errOutside(r Memory, b Block) error {
	rg := r.Range()
	return fmt.Errorf("preserved block %#x (order %d) lies outside the region %#x-%#x; the kernel would reserve it blindly",
		b.PA, b.Order, rg.Start, rg.End()-1)
}

// sortBlocks sorts the blocks a memory map preserves by address and
// refuses two that overlap.
func sortBlocks(blocks []Block) error {
	slices.SortFunc(blocks, func(a, b Block) int { return cmp.Compare(a.PA, b.PA) })
	for i := 1; i < len(blocks); i++ {
		if blocks[i].PA < blocks[i-1].End() {
			return fmt.Errorf("preserved blocks %#x (order %d) and %#x (order %d) overlap",
				blocks[i-1].PA, blocks[i-1].Order, blocks[i].PA, blocks[i].Order)
		}
	}
	return nil
}

// findChunkBit looks through the chunk list at mapPA (at most maxChunks
// chunks, as ReadIncoming counted them) for the bitmap bit of the block
// that holds pa.
func findChunkBit(mem Memory, mapPA, pa uint64, maxChunks int) (RadixBit, bool, error) {
	for seen := 0; mapPA != 0 && seen < maxChunks; seen++ {
		chunk, err := mem.Bytes(mapPA, physmem.PageSize)
		if err != nil {
			return RadixBit{}, false, fmt.Errorf("kho: chunk %#x: %w", mapPA, err)
		}
		order := uint(binary.LittleEndian.Uint32(chunk[8:]))
		n := min(binary.LittleEndian.Uint32(chunk[12:]), ChunkCapacity)
		shift := order + pageShift
		for i := range n {
			elm := chunk[chunkHeaderSize+i*bitmapPtrSize:]
			start, bmPA := binary.LittleEndian.Uint64(elm), binary.LittleEndian.Uint64(elm[8:])
			if pa < start || (pa-start)>>shift >= preserveBits {
				continue
			}
			bit := (pa - start) >> shift
			bm, err := mem.Bytes(bmPA+bit/8, 1)
			if err != nil {
				return RadixBit{}, false, fmt.Errorf("kho: chunk %#x element %d: bitmap: %w", mapPA, i, err)
			}
			if bm[0]&(1<<(bit%8)) != 0 {
				return RadixBit{BitmapPA: bmPA, Bit: bit, Block: Block{PA: start + bit<<shift, Order: order}}, true, nil
			}
		}
		mapPA = binary.LittleEndian.Uint64(chunk)
	}
	return RadixBit{}, false, nil
}

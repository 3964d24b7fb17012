package luo

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/pkg/kernel"
)

// blockSet models struct kho_block_set (kernel/liveupdate/kho_block.c of
// 7.2): entries of one size in page-sized blocks, each headed by
// {u64 next; u64 count} and linked through next. Outgoing sets grow and
// shrink as entries come and go; incoming sets are restored from a chain
// the previous kernel left.
type blockSet struct {
	entrySize int
	perBlock  int
	blocks    []setBlock
	incoming  bool
}

type setBlock struct {
	pa  uint64
	mem []byte
}

func newBlockSet(entrySize int) *blockSet {
	return &blockSet{entrySize: entrySize, perBlock: (BlockSize - BlockHeaderSize) / entrySize}
}

// headPA models kho_block_set_head_pa: 0 for an empty set.
func (bs *blockSet) headPA() uint64 {
	if len(bs.blocks) == 0 {
		return 0
	}
	return bs.blocks[0].pa
}

// grow models kho_block_set_grow: blocks are added until count entries
// fit; ENOSPC past MaxBlocks. On failure the blocks added by this call go
// again.
func (bs *blockSet) grow(mem Memory, count int) error {
	orig := len(bs.blocks)
	for count > len(bs.blocks)*bs.perBlock {
		err := bs.growOne(mem)
		if err == nil {
			continue
		}
		var errs []error
		for len(bs.blocks) > orig {
			errs = append(errs, bs.shrinkOne(mem))
		}
		return errors.Join(append([]error{err}, errs...)...)
	}
	return nil
}

func (bs *blockSet) growOne(mem Memory) error {
	if len(bs.blocks) >= MaxBlocks {
		return fmt.Errorf("block set of %d blocks: %w", MaxBlocks, unix.ENOSPC)
	}
	pa, m, err := mem.AllocPreserve(BlockSize)
	if err != nil {
		return fmt.Errorf("allocate block: %w", err)
	}
	if len(m) < BlockSize {
		return errors.Join(fmt.Errorf("block of %d bytes: %w", len(m), unix.EFAULT), mem.UnpreserveFree(pa))
	}
	if n := len(bs.blocks); n > 0 {
		le.PutUint64(bs.blocks[n-1].mem, pa)
	}
	bs.blocks = append(bs.blocks, setBlock{pa, m[:BlockSize]})
	return nil
}

// shrink models kho_block_set_shrink: trailing blocks go while the blocks
// before them hold count entries.
func (bs *blockSet) shrink(mem Memory, count int) error {
	var errs []error
	for len(bs.blocks) > 0 && count <= (len(bs.blocks)-1)*bs.perBlock {
		errs = append(errs, bs.shrinkOne(mem))
	}
	return errors.Join(errs...)
}

func (bs *blockSet) shrinkOne(mem Memory) error {
	n := len(bs.blocks)
	last := bs.blocks[n-1]
	bs.blocks = bs.blocks[:n-1]
	if n > 1 {
		le.PutUint64(bs.blocks[n-2].mem, 0)
	}
	if bs.incoming {
		return nil // kho_restore_free: the model only drops it
	}
	return mem.UnpreserveFree(last.pa)
}

// destroy models kho_block_set_destroy.
func (bs *blockSet) destroy(mem Memory) error {
	var errs []error
	for len(bs.blocks) > 0 {
		errs = append(errs, bs.shrinkOne(mem))
	}
	return errors.Join(errs...)
}

// reserve models the i-th kho_block_set_it_reserve_entry of a walk from the
// start: the slot of entry i, its block's count set to the entries reserved
// in it so far. nil when the set is full (the kernel WARNs and returns
// ENOSPC).
func (bs *blockSet) reserve(i int) []byte {
	e := bs.slot(i)
	if e != nil {
		le.PutUint64(bs.blocks[i/bs.perBlock].mem[8:], uint64(i%bs.perBlock+1))
	}
	return e
}

// slot is entry i's place, counting from the first block; nil past the end.
func (bs *blockSet) slot(i int) []byte {
	b := i / bs.perBlock
	if i < 0 || b >= len(bs.blocks) {
		return nil
	}
	return bs.entry(b, i%bs.perBlock)
}

func (bs *blockSet) entry(block, i int) []byte {
	return bs.blocks[block].mem[BlockHeaderSize+i*bs.entrySize:][:bs.entrySize]
}

// clear models kho_block_set_clear: counts and entries zeroed, links kept.
func (bs *blockSet) clear() {
	for _, b := range bs.blocks {
		clear(b.mem[8:])
	}
}

// entries models a full kho_block_set_it_read_entry walk of a restored
// set: each block's count entries, in order.
func (bs *blockSet) entries() [][]byte {
	var out [][]byte
	for b, blk := range bs.blocks {
		n := int(le.Uint64(blk.mem[8:])) // checked against perBlock by restore
		for i := range n {
			out = append(out, bs.entry(b, i))
		}
	}
	return out
}

// errBlockSetCorrupted is what kho_block_set_restore reports as EINVAL.
var errBlockSetCorrupted = errors.New("block set is corrupted")

// chainError is a chain kho_block_set_restore refuses before it reads a
// count: a block reached twice, or more than MaxBlocks blocks.
type chainError struct {
	pa   uint64
	loop bool
}

func (e *chainError) Error() string {
	if e.loop {
		return fmt.Sprintf("block chain loops back to %#x", e.pa)
	}
	return fmt.Sprintf("block chain has more than KHO_MAX_BLOCKS %d blocks", MaxBlocks)
}

// followChain walks the chain of a kho_block_set from head (0: empty) as
// kho_block_set_restore does, through mapBlock, which returns a block's
// page or why it cannot be used. It stops at a cycle or past MaxBlocks
// (a *chainError) and at mapBlock's first error, returning the blocks
// mapped so far. Counts are the caller's. Both the LUO Core's incoming
// side and Decode walk chains with it.
func followChain(head uint64, mapBlock func(pa uint64) ([]byte, error)) ([]setBlock, error) {
	var blocks []setBlock
	seen := map[uint64]bool{}
	for pa := head; pa != 0; {
		if seen[pa] || len(blocks) >= MaxBlocks {
			return blocks, &chainError{pa: pa, loop: seen[pa]}
		}
		seen[pa] = true
		m, err := mapBlock(pa)
		if err != nil {
			return blocks, err
		}
		blocks = append(blocks, setBlock{pa, m[:BlockSize]})
		pa = le.Uint64(m)
	}
	return blocks, nil
}

// restoreBlockSet models kho_block_set_restore of the chain at head. As in
// 7.2 the chain is first checked for a cycle or more than MaxBlocks blocks,
// then every block's count must be 1 to perBlock; both fail with EINVAL.
// Beyond 7.2 each block is mapped through Memory: one the previous kernel
// did not preserve is a *BootError with kernel.ReadsUnpreserved. head 0 is
// an empty set.
func restoreBlockSet(mem Memory, entrySize int, head uint64) (*blockSet, error) {
	bs := newBlockSet(entrySize)
	bs.incoming = true
	blocks, err := followChain(head, func(pa uint64) ([]byte, error) {
		m, err := mem.Map(pa, BlockSize)
		if err == nil && len(m) < BlockSize {
			err = fmt.Errorf("mapped %d bytes: %w", len(m), unix.EFAULT)
		}
		if err != nil {
			return nil, &BootError{Err: fmt.Errorf("block at %#x: %w", pa, err), KernelAction: kernel.ReadsUnpreserved}
		}
		return m, nil
	})
	var ce *chainError
	if errors.As(err, &ce) {
		return nil, fmt.Errorf("%w at %#x (a cycle or more than %d blocks): %w", errBlockSetCorrupted, ce.pa, MaxBlocks, unix.EINVAL)
	}
	if err != nil {
		return nil, err
	}
	bs.blocks = blocks
	for _, b := range bs.blocks {
		if n := le.Uint64(b.mem[8:]); n == 0 || n > uint64(bs.perBlock) {
			return nil, fmt.Errorf("block at %#x contains invalid entry count %d (1 to %d): %w", b.pa, n, bs.perBlock, unix.EINVAL)
		}
	}
	return bs, nil
}

package gen72

import (
	"encoding/binary"
	"fmt"
)

// Block sets (kernel/liveupdate/kho_block.c): page-sized blocks linked by
// physical address, each {u64 next; u64 count} then count entries.
const (
	blockHeaderSize = 16
	// MaxBlocksPerSet is KHO_MAX_BLOCKS, the kernel's own bound on a chain.
	MaxBlocksPerSet = 10000
	// MaxBlocksTotal bounds the blocks of all chains of one handover (64
	// MiB of metadata, a million sessions' worth), so hostile input cannot
	// make the reader walk sessions times files blocks.
	MaxBlocksTotal = 1 << 14
)

// blockReader reads the block sets of one handover, sharing a budget and
// the set of pages already claimed.
type blockReader struct {
	mem     Memory
	claimed *claims
	total   int
}

// chain is the decoded content of one block set.
type chain struct {
	blocks  []uint64 // block PAs in list order
	entries [][]byte // copies of the entries, in order
}

// read walks the set starting at head (0 is the empty set) whose entries are
// entrySize bytes. Like kho_block_set_restore it rejects cycles, more than
// KHO_MAX_BLOCKS blocks and blocks whose count is 0 or beyond the block;
// it also rejects misaligned blocks and blocks claimed elsewhere.
func (r *blockReader) read(what string, head uint64, entrySize int) (chain, error) {
	var c chain
	perBlock := uint64((PageSize - blockHeaderSize) / entrySize)
	for pa, i := head, 0; pa != 0; i++ {
		where := fmt.Sprintf("%s block %d", what, i)
		if err := checkPage(where, pa); err != nil {
			return chain{}, err
		}
		if i >= MaxBlocksPerSet {
			return chain{}, fmt.Errorf("%s: more than %d blocks: %w", what, MaxBlocksPerSet, ErrTooMany)
		}
		if r.total >= MaxBlocksTotal {
			return chain{}, fmt.Errorf("%s: more than %d blocks in the handover: %w", where, MaxBlocksTotal, ErrTooMany)
		}
		if owner, ok := r.claimed.owner(pa); ok {
			if owner == what {
				return chain{}, fmt.Errorf("%s at %#x: list returns to an earlier block: %w", where, pa, ErrLoop)
			}
			return chain{}, fmt.Errorf("%s at %#x: already holds %s: %w", where, pa, owner, ErrShared)
		}
		r.claimed.claim(what, pa, PageSize)
		r.total++
		b, err := read(r.mem, where, pa, PageSize)
		if err != nil {
			return chain{}, err
		}
		next := binary.LittleEndian.Uint64(b)
		count := binary.LittleEndian.Uint64(b[8:])
		if count == 0 || count > perBlock {
			return chain{}, fmt.Errorf("%s at %#x: count %d, want 1..%d: %w", where, pa, count, perBlock, ErrBadCount)
		}
		c.blocks = append(c.blocks, pa)
		for e := uint64(0); e < count; e++ {
			off := blockHeaderSize + e*uint64(entrySize)
			c.entries = append(c.entries, append([]byte(nil), b[off:off+uint64(entrySize)]...))
		}
		pa = next
	}
	return c, nil
}

// claims records which structure owns each page of the handover.
type claims struct {
	pages map[uint64]string
}

func newClaims() *claims { return &claims{pages: make(map[uint64]string)} }

func (c *claims) owner(pa uint64) (string, bool) {
	o, ok := c.pages[pa&^(PageSize-1)]
	return o, ok
}

// claim records the pages of [pa, pa+n) as owned by what; it reports the
// first page someone else owns.
func (c *claims) claim(what string, pa, n uint64) error {
	if n == 0 {
		return nil
	}
	if n > maxRead || pa+n < pa {
		return fmt.Errorf("%s: %d bytes at %#x: %w", what, n, pa, ErrBadSize)
	}
	first, last := pa&^(PageSize-1), (pa+n-1)&^(PageSize-1)
	for p := first; ; p += PageSize {
		if o, ok := c.pages[p]; ok {
			return fmt.Errorf("%s: page %#x already holds %s: %w", what, p, o, ErrShared)
		}
		if p == last {
			break
		}
	}
	for p := first; ; p += PageSize {
		c.pages[p] = what
		if p == last {
			break
		}
	}
	return nil
}

package kho

// Names and limits of the 7.0 KHO ABI.
const (
	// Compatible is the root FDT's compatible string in Linux 7.0.
	Compatible = "kho-v1"
	// PropMemoryMap holds the physical address of the first memory map chunk.
	PropMemoryMap = "preserved-memory-map"
	// PropSubFDT holds, in each child node, the physical address of that
	// subsystem's FDT.
	PropSubFDT = "fdt"

	pageShift = 12
	pageSize  = 1 << pageShift

	// chunkHeaderSize is struct khoser_mem_chunk_hdr: u64 next, u32 order,
	// u32 num_elms.
	chunkHeaderSize = 16
	// bitmapPtrSize is struct khoser_mem_bitmap_ptr: u64 phys_start, u64 bitmap.
	bitmapPtrSize = 16
	// ChunkCapacity is KHOSER_BITMAP_SIZE: bitmap pointers per chunk page.
	ChunkCapacity = (pageSize - chunkHeaderSize) / bitmapPtrSize
	// preserveBits is PRESERVE_BITS: one bit per 2^order pages, one page of bits.
	preserveBits = pageSize * 8
	// MaxPageOrder is x86-64's MAX_PAGE_ORDER; kho_alloc_preserve refuses
	// larger blocks with E2BIG.
	MaxPageOrder = 10
)

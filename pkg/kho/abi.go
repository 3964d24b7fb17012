package kho

import (
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// Names and limits of the 7.0 KHO ABI.
const (
	// Compatible is the root FDT's compatible string in Linux 7.0.
	Compatible = "kho-v1"
	// PropMemoryMap holds the physical address of the first memory map chunk.
	PropMemoryMap = "preserved-memory-map"
	// PropSubFDT holds, in each child node, the physical address of that
	// subsystem's FDT.
	PropSubFDT = "fdt"

	// pageShift is log2(physmem.PageSize).
	pageShift = 12

	// chunkHeaderSize is struct khoser_mem_chunk_hdr: u64 next, u32 order,
	// u32 num_elms.
	chunkHeaderSize = 16
	// bitmapPtrSize is struct khoser_mem_bitmap_ptr: u64 phys_start, u64 bitmap.
	bitmapPtrSize = 16
	// ChunkCapacity is KHOSER_BITMAP_SIZE: bitmap pointers per chunk page.
	ChunkCapacity = (physmem.PageSize - chunkHeaderSize) / bitmapPtrSize
	// preserveBits is PRESERVE_BITS: one bit per 2^order pages, one page of bits.
	preserveBits = physmem.PageSize * 8
	// MaxPageOrder is x86-64's MAX_PAGE_ORDER; kho_alloc_preserve refuses
	// larger blocks with E2BIG.
	MaxPageOrder = 10
)

// CompatibleOf is the root compatible a kernel of generation g writes and
// expects: "kho-v4" in 7.2, "kho-v1" before. The compatible also says how
// children and the memory map are encoded.
func CompatibleOf(g kernel.Generation) string {
	if g == kernel.V72 {
		return CompatibleV4
	}
	return Compatible
}

// Names and sizes of the 7.2 KHO ABI (include/linux/kho/abi/kexec_handover.h
// and kexec_metadata.h).
const (
	// CompatibleV4 is the root FDT's compatible string in Linux 7.2 (the
	// header's comment says "kho-v3"; KHO_FDT_COMPATIBLE says "kho-v4").
	CompatibleV4 = "kho-v4"
	// PropBlobData holds, in each 7.2 child, the blob's physical address.
	PropBlobData = "preserved-data"
	// PropBlobSize holds, in each 7.2 child, the blob's size in bytes.
	PropBlobSize = "blob-size"

	// KexecMetadataName is the child kho_init adds in 7.2:
	// struct kho_kexec_metadata { u32 version; char previous_release[65];
	// u32 kexec_count; } __packed.
	KexecMetadataName    = "kexec-metadata"
	KexecMetadataVersion = 1
	KexecMetadataSize    = 4 + ReleaseLen + 4
	// ReleaseLen is __NEW_UTS_LEN + 1.
	ReleaseLen = 65
)

// The radix tree of the 7.2 preserved-memory map. A key is
// (1 << (52 - order)) | (pa >> (12 + order)); levels 5 to 1 are one-page
// tables of 512 physical addresses indexed by 9 key bits each (59:51 down
// to 23:15), level 0 a one-page bitmap over key bits 14:0.
const (
	radixOrder0Bit = 64 - pageShift // KHO_ORDER_0_LOG2
	radixTableBits = 9              // KHO_TABLE_SIZE_LOG2
	radixTableSize = 1 << radixTableBits
	radixBitmapBit = pageShift + 3 // KHO_BITMAP_SIZE_LOG2
	// RadixLevels is KHO_TREE_MAX_DEPTH - 1: the table levels above the bitmap.
	RadixLevels = 5
)

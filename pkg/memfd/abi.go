// Package memfd writes and reads the state that Linux 7.2's memfd file
// handler ("memfd-v2", mm/memfd_luo.c) hands over through LUO: a packed
// struct memfd_luo_ser (include/linux/kho/abi/memfd.h) holding the file's
// position, size and seals and the kho_vmalloc descriptor of an array of
// struct memfd_luo_folio_ser, one per folio of the file's page cache, each
// naming the folio's page frame and its index in the file.
//
// Write lays out a file of deterministic content (seeded, as internal/payload
// fills FLB payloads) the way memfd_luo_preserve does, allocating every
// block through a kho.PageAllocator so that all of it is preserved. Read
// decodes any memfd-v2 state from untrusted memory, checks every count,
// frame, index, size and order, and returns the file's size, folios, seals
// and a CRC-32 of its logical content, holes as zeros. Examples are one
// file of each shape a reader has to handle.
//
// All integers are little endian (x86-64); pages are 4096 bytes.
package memfd

import (
	"encoding/binary"
	"math"

	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/kho"
)

// The memfd-v2 ABI.
const (
	// Compatible is MEMFD_LUO_FH_COMPATIBLE, the luo_file_ser compatible
	// of a memfd.
	Compatible = "memfd-v2"
	// SerSize is sizeof(struct memfd_luo_ser): u64 pos; u64 size; u32
	// seals; u32 flags; u64 nr_folios; struct kho_vmalloc folios (packed).
	SerSize = 32 + kho.VmallocSize
	// FolioSerSize is sizeof(struct memfd_luo_folio_ser): u64 pfn:52,
	// flags:12; u64 index (packed).
	FolioSerSize = 16

	// FolioDirty is MEMFD_LUO_FOLIO_DIRTY: the folio holds user data.
	FolioDirty uint16 = 1 << 0
	// FolioUptodate is MEMFD_LUO_FOLIO_UPTODATE: the folio's content is
	// valid; one without it reads as zeros.
	FolioUptodate uint16 = 1 << 1
	// folioFlagsKnown are the folio flags 7.2 defines.
	folioFlagsKnown = FolioDirty | FolioUptodate

	// PFNBits and FlagBits are the widths of memfd_luo_folio_ser's
	// bitfields pfn and flags, which share its first u64.
	PFNBits  = 52
	FlagBits = 12

	// MaxLFSFileSize is x86-64's MAX_LFS_FILESIZE (LLONG_MAX).
	MaxLFSFileSize = math.MaxInt64
	// maxPhys bounds a folio's physical address (52 bits).
	maxPhys = 1 << 52
)

// The seals of include/uapi/linux/fcntl.h. The kernel stores them in
// memfd_luo_ser as they are: they are uABI.
const (
	SealSeal        uint32 = 0x0001 // F_SEAL_SEAL
	SealShrink      uint32 = 0x0002 // F_SEAL_SHRINK
	SealGrow        uint32 = 0x0004 // F_SEAL_GROW
	SealWrite       uint32 = 0x0008 // F_SEAL_WRITE
	SealFutureWrite uint32 = 0x0010 // F_SEAL_FUTURE_WRITE
	SealExec        uint32 = 0x0020 // F_SEAL_EXEC
	// AllSeals is MEMFD_LUO_ALL_SEALS: a file with any other seal is
	// refused at preserve and at retrieve (EOPNOTSUPP).
	AllSeals = SealSeal | SealShrink | SealGrow | SealWrite | SealFutureWrite | SealExec
)

// Ser is struct memfd_luo_ser.
type Ser struct {
	Pos      uint64 // f_pos at freeze
	Size     uint64 // i_size
	Seals    uint32 // F_SEAL_* bits
	Flags    uint32 // unused in 7.2: must be 0
	NrFolios uint64 // entries of the folio array
	Folios   kho.Vmalloc
}

// Put writes s into b[:SerSize]. Its fields in order, unpadded, are the C
// layout (pkg/abi checks it against the kernel's BTF).
func (s Ser) Put(b []byte) { kernel.PutStruct(b, s) }

// ParseSer decodes the struct at the start of b without judging it.
func ParseSer(b []byte) (Ser, error) { return kernel.ReadStruct[Ser]("memfd_luo_ser", b) }

// FolioSer is struct memfd_luo_folio_ser.
type FolioSer struct {
	PFN   uint64 // 52 bits
	Flags uint16 // 12 bits: FolioDirty, FolioUptodate
	Index uint64 // the folio's first page in the file (folio->index)
}

// Put writes f into b[:FolioSerSize]: pfn in bits 0-51 and flags in bits
// 52-63 of the first u64 (GCC's x86-64 bitfield order). Bits beyond a
// field's width are dropped, as the compiler does.
func (f FolioSer) Put(b []byte) {
	le := binary.LittleEndian
	le.PutUint64(b, f.PFN&(1<<PFNBits-1)|uint64(f.Flags&(1<<FlagBits-1))<<PFNBits)
	le.PutUint64(b[8:], f.Index)
}

// ParseFolioSer decodes the entry at the start of b (FolioSerSize bytes).
func ParseFolioSer(b []byte) FolioSer {
	le := binary.LittleEndian
	w := le.Uint64(b)
	return FolioSer{PFN: w & (1<<PFNBits - 1), Flags: uint16(w >> PFNBits), Index: le.Uint64(b[8:])}
}

// RestoredSeals models the seals a retrieved memfd ends up with:
// memfd_luo_retrieve creates the file with MFD_ALLOW_SEALING only, so it is
// executable (mode 0777), and memfd_add_seals turns F_SEAL_EXEC on an
// executable file into F_SEAL_EXEC plus every write seal ("SEAL_EXEC
// implies SEAL_WRITE"). A file preserved with F_SEAL_EXEC alone, as
// MFD_NOEXEC_SEAL creates it, comes back write-sealed: the seals are not
// restored as they were.
func RestoredSeals(seals uint32) uint32 {
	if seals&SealExec != 0 {
		seals |= SealShrink | SealGrow | SealWrite | SealFutureWrite
	}
	return seals
}

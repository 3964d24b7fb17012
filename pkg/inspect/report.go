package inspect

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/kho-sim/kho-sim/pkg/kernel"
)

// SchemaVersion is the "schema" field of the JSON document. It changes only
// when a field is removed, renamed or changes meaning; new fields may be
// added without a change. Schema 2 added the generations after 7.0.
const SchemaVersion = 2

// Report is everything Decode learned about one handover. It marshals to
// the JSON document described in the package comment.
type Report struct {
	Schema int `json:"schema"`
	// Region is the physical memory the handover was read from.
	Region Span `json:"region"`
	// RootPA is where the KHO root FDT was looked for.
	RootPA Hex `json:"root_pa"`
	// Generation is what the compatibles say the handover is; nil when no
	// root FDT could be read.
	Generation *Generation `json:"generation"`
	// KHO is the root FDT; nil when none could be read at RootPA.
	KHO *KHORoot `json:"kho"`
	// Subtrees are the root's children in blob order (newest first).
	Subtrees []Subtree `json:"subtrees"`
	// LUO is the "LUO" subtree decoded; nil when absent or unreadable.
	LUO *LUO `json:"luo"`
	// KexecMetadata is kho-v4's "kexec-metadata" child; nil when absent
	// (always in kho-v1) or unreadable.
	KexecMetadata *KexecMetadata `json:"kexec_metadata"`
	// KHOSim is kho-sim's own metadata; nil when absent (a kernel's own
	// handover) or unreadable.
	KHOSim *Meta `json:"kho_sim"`
	// Memory is the preserved-memory map; nil when it could not be read.
	Memory *Memory `json:"preserved_memory"`
	// Notes say what is absent without being wrong.
	Notes []string `json:"notes"`
	// Findings are everything wrong, in the order found.
	Findings []kernel.Finding `json:"findings"`
}

// Span is a range of physical memory.
type Span struct {
	Start Hex    `json:"start"`
	Size  uint64 `json:"size"`
}

// Generation names the handover's ABI generation from its compatibles.
type Generation struct {
	// Name is the generation kho-sim writes with `sim --abi` ("7.0",
	// "luo-v2", "7.2"); "" when the compatibles name none it knows.
	Name string `json:"name"`
	KHO  string `json:"kho"` // the root's compatible
	// LUO is the "LUO" child's compatible: the FDT's root compatible under
	// kho-v1, the first 8 bytes of the blob under kho-v4; "" when there is
	// no LUO child that could be read.
	LUO string `json:"luo"`
}

// KHORoot is the KHO root FDT.
type KHORoot struct {
	PA   Hex `json:"pa"`
	Size int `json:"size"` // the header's totalsize
	// Compatible is the root's "compatible" as text ("" when missing).
	Compatible string `json:"compatible"`
	// MemoryMapPA is "preserved-memory-map": the first chunk of the bitmap
	// map (kho-v1) or the radix tree's root table (kho-v4).
	MemoryMapPA Hex `json:"preserved_memory_map"`
	// DTS is the tree as `dtc -I dtb -O dts` prints it.
	DTS string `json:"dts"`
}

// What a subtree holds (Subtree.Kind).
const (
	KindFDT  = "fdt"  // a flattened device tree
	KindBlob = "blob" // raw bytes (kho-v4 only)
)

// MaxBlobHex bounds the bytes of a raw blob the report carries in hex.
const MaxBlobHex = 256

// Subtree is one child of the KHO root: a subsystem's FDT (kho-v1 "fdt",
// or a kho-v4 blob that starts with the FDT magic) or raw blob (kho-v4).
type Subtree struct {
	Name string `json:"name"`
	// PA is the child's "fdt" (kho-v1) or "preserved-data" (kho-v4); 0
	// when the property is unusable.
	PA Hex `json:"pa"`
	// BlobSize is kho-v4's "blob-size"; 0 in kho-v1, which has none.
	BlobSize uint64 `json:"blob_size"`
	// Kind is KindFDT or KindBlob; "" when the child could not be read.
	Kind string `json:"kind"`
	// Size is the bytes read: an FDT's totalsize or the blob's size.
	Size int `json:"size"`
	// Compatible and DTS are an FDT's; "" for a blob.
	Compatible string `json:"compatible"`
	DTS        string `json:"dts"`
	// Hex is a blob's first min(Size, MaxBlobHex) bytes in hex; "" for an FDT.
	Hex string `json:"hex"`
}

// LUO is the "LUO" child and the blocks it points to, in any generation.
type LUO struct {
	// Compatible is the LUO FDT's ("luo-v1", "luo-v2") or, in 7.2, the
	// luo_ser blob's compatible field ("luo-v5").
	Compatible       string `json:"compatible"`
	LiveupdateNumber uint64 `json:"liveupdate_number"`
	// Ser is struct luo_ser (luo-v2: where luo-abi-header points; 7.2: the
	// child's blob); nil in luo-v1, which has none, or when unreadable.
	Ser *Ser `json:"luo_ser"`
	// SessionsPA and FLBsPA are luo-v1's luo-session-header and
	// luo-flb-header, or luo_ser's sessions_pa and flbs_pa (0: none).
	SessionsPA Hex `json:"sessions_pa"`
	FLBsPA     Hex `json:"flbs_pa"`
	// FLB and Sessions are nil when absent or their block could not be mapped.
	FLB      *FLBTable     `json:"flb"`
	Sessions *SessionTable `json:"sessions"`
}

// Ser is where struct luo_ser lies and how large it is (24 bytes in
// luo-v2; the blob-size in 7.2).
type Ser struct {
	PA   Hex    `json:"pa"`
	Size uint64 `json:"size"`
}

// FLBTable is the FLB page: struct luo_flb_header_ser and its entries.
type FLBTable struct {
	PA        Hex    `json:"pa"`
	PageCount uint64 `json:"pgcnt"`
	Count     uint64 `json:"count"` // as the header claims it
	// Entries are the first min(Count, LUO_FLB_MAX) entries.
	Entries []FLBEntry `json:"entries"`
}

// FLBEntry is one struct luo_flb_ser.
type FLBEntry struct {
	Index int    `json:"index"`
	Name  string `json:"name"` // up to the first NUL
	// NameTerminated is false when the 48 bytes hold no NUL.
	NameTerminated bool   `json:"name_terminated"`
	Data           Hex    `json:"data"`
	Count          uint64 `json:"count"`
}

// Block is one block of session or file entries: luo-v1 and luo-v2's
// single session block (16 pages) or file block (2 pages), or one
// page-sized block of a 7.2 chain.
type Block struct {
	PA Hex `json:"pa"`
	// Count is the entries the block claims: luo_session_header_ser.count,
	// a session's file count, or kho_block_header_ser.count.
	Count uint64 `json:"count"`
}

// SessionTable is the session block (luo-v1, luo-v2) or chain of blocks (7.2).
type SessionTable struct {
	PA Hex `json:"pa"` // the (first) block
	// Count is what the blocks claim, summed over a 7.2 chain.
	Count  uint64  `json:"count"`
	Blocks []Block `json:"blocks"`
	// Sessions are the entries read: at most LUO_SESSION_MAX in the old
	// block; from a 7.2 chain those of each block whose count is valid.
	Sessions []Session `json:"sessions"`
}

// Session is one struct luo_session_ser and its files.
type Session struct {
	Index          int    `json:"index"`
	Name           string `json:"name"`
	NameTerminated bool   `json:"name_terminated"`
	FilesPA        Hex    `json:"files_pa"`
	Count          uint64 `json:"count"` // files, as the entry claims
	// FileBlocks are the file blocks read (empty when none could be).
	FileBlocks []Block `json:"file_blocks"`
	// Files are the entries read: at most LUO_FILE_MAX from the old file
	// block; from a 7.2 chain those of each block whose count is valid.
	Files []File `json:"files"`
}

// File is one struct luo_file_ser.
type File struct {
	Index                int    `json:"index"`
	Compatible           string `json:"compatible"`
	CompatibleTerminated bool   `json:"compatible_terminated"`
	Data                 Hex    `json:"data"`
	Token                Hex    `json:"token"`
	// Memfd is a "memfd-v2" file's state; nil for other handlers, or
	// when it could not be read (a finding says why).
	Memfd *Memfd `json:"memfd,omitempty"`
}

// Memfd is what struct memfd_luo_ser and its folios describe.
type Memfd struct {
	Size   uint64 `json:"size"`
	Pos    uint64 `json:"pos"`
	Seals  uint32 `json:"seals"`
	Folios int    `json:"folios"`
	Holes  uint64 `json:"holes"` // pages below size no folio covers
	// CRC is the CRC-32 of the file's content, holes as zeros.
	CRC Hex `json:"crc"`
}

// KexecMetadata is 7.2's struct kho_kexec_metadata.
type KexecMetadata struct {
	PA              Hex    `json:"pa"`
	Size            uint64 `json:"size"` // blob-size
	Version         uint32 `json:"version"`
	PreviousRelease string `json:"previous_release"`
	// KexecCount is kexec boots since the last cold boot.
	KexecCount uint32 `json:"kexec_count"`
}

// Meta is kho-sim's metadata child ("kho-sim", compatible "kho-sim-v1").
type Meta struct {
	Scenario string `json:"scenario"`
	Boot     int    `json:"boot"`
	Boots    int    `json:"boots"`
	// LUONumber is the liveupdate-number the LUO FDT must carry.
	LUONumber uint64     `json:"luo_number"`
	Fix       bool       `json:"fix"`
	Passed    int        `json:"passed"`
	Failed    int        `json:"failed"`
	Skipped   int        `json:"skipped"`
	TSCHz     uint64     `json:"tsc_hz"`
	FLBs      []MetaFLB  `json:"flbs"`
	Files     []MetaFile `json:"files"`
}

// MetaFLB is an FLB as kho-sim recorded it.
type MetaFLB struct {
	Name  string `json:"name"`
	Data  Hex    `json:"data"`
	Count uint64 `json:"count"`
	Size  uint64 `json:"size"`
	Seed  Hex    `json:"seed"`
	CRC   Hex    `json:"crc"`
	// PayloadOK is true when the payload at Data matches Size, Seed, CRC.
	PayloadOK bool `json:"payload_ok"`
}

// MetaFile is a preserved file as kho-sim recorded it.
type MetaFile struct {
	Session   string `json:"session"`
	Token     Hex    `json:"token"`
	Handler   string `json:"handler"`
	Data      Hex    `json:"data"`
	Size      uint64 `json:"size"`
	Seed      Hex    `json:"seed"`
	CRC       Hex    `json:"crc"`
	PayloadOK bool   `json:"payload_ok"`
}

// How the preserved-memory map is encoded (Memory.Encoding).
const (
	EncodingBitmaps = "bitmaps" // kho-v1: chunks of per-order bitmaps
	EncodingRadix   = "radix"   // kho-v4: one radix tree over all orders
)

// Memory is the preserved-memory map.
type Memory struct {
	Encoding string `json:"encoding"`
	Blocks   int    `json:"blocks"` // preserved blocks (2^order pages each)
	Bytes    uint64 `json:"bytes"`  // their total size
	// Ranges are the blocks with adjacent ones merged, by address.
	Ranges []MemRange `json:"ranges"`
}

// MemRange is a run of preserved pages [Start, End).
type MemRange struct {
	Start Hex    `json:"start"`
	End   Hex    `json:"end"`
	Size  uint64 `json:"size"`
	Pages uint64 `json:"pages"`
}

// RootError returns why no KHO root FDT could be read at RootPA (nothing
// else could then be decoded), or nil when there is one.
func (r *Report) RootError() error {
	if r.KHO != nil {
		return nil
	}
	for _, f := range r.Findings {
		if f.Where == whereRoot {
			return errors.New(f.What)
		}
	}
	return fmt.Errorf("no FDT at %#x", uint64(r.RootPA))
}

// Hex is a 64-bit value that JSON carries as a "0x..." string, so that
// addresses, data and tokens survive readers whose numbers are doubles.
type Hex uint64

func (h Hex) String() string { return fmt.Sprintf("%#x", uint64(h)) }

// MarshalJSON writes "0x..." (lower case, no padding; "0x0" for zero).
func (h Hex) MarshalJSON() ([]byte, error) {
	return []byte(`"0x` + strconv.FormatUint(uint64(h), 16) + `"`), nil
}

// UnmarshalJSON reads what MarshalJSON writes.
func (h *Hex) UnmarshalJSON(b []byte) error {
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return fmt.Errorf("inspect: hex value %s: want a \"0x...\" string", b)
	}
	digits, ok := strings.CutPrefix(s, "0x")
	if !ok {
		return fmt.Errorf("inspect: hex value %q: want a 0x prefix", s)
	}
	v, err := strconv.ParseUint(digits, 16, 64)
	if err != nil {
		return fmt.Errorf("inspect: hex value %q: %w", s, err)
	}
	*h = Hex(v)
	return nil
}

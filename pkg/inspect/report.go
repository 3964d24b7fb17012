package inspect

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// SchemaVersion is the "schema" field of the JSON document. It changes only
// when a field is removed, renamed or changes meaning; new fields may be
// added without a change.
const SchemaVersion = 1

// Report is everything Decode learned about one handover. It marshals to
// the JSON document described in the package comment.
type Report struct {
	Schema int `json:"schema"`
	// Region is the physical memory the handover was read from.
	Region Span `json:"region"`
	// RootPA is where the KHO root FDT was looked for.
	RootPA Hex `json:"root_pa"`
	// KHO is the root FDT; nil when none could be read at RootPA.
	KHO *KHORoot `json:"kho"`
	// Subtrees are the root's children in blob order (newest first).
	Subtrees []Subtree `json:"subtrees"`
	// LUO is the "LUO" subtree decoded; nil when absent or unreadable.
	LUO *LUO `json:"luo"`
	// KHOSim is kho-sim's own metadata; nil when absent (a kernel's own
	// handover) or unreadable.
	KHOSim *Meta `json:"kho_sim"`
	// Memory is the preserved-memory map; nil when it could not be read.
	Memory *Memory `json:"preserved_memory"`
	// Notes say what is absent without being wrong.
	Notes []string `json:"notes"`
	// Findings are everything wrong, in the order found.
	Findings []Finding `json:"findings"`
}

// Span is a range of physical memory.
type Span struct {
	Start Hex    `json:"start"`
	Size  uint64 `json:"size"`
}

// KHORoot is the KHO root FDT.
type KHORoot struct {
	PA   Hex `json:"pa"`
	Size int `json:"size"` // the header's totalsize
	// Compatible is the root's "compatible" as text ("" when missing).
	Compatible string `json:"compatible"`
	// MemoryMapPA is "preserved-memory-map": the first chunk of the map.
	MemoryMapPA Hex `json:"preserved_memory_map"`
	// DTS is the tree as `dtc -I dtb -O dts` prints it.
	DTS string `json:"dts"`
}

// Subtree is one child of the KHO root: a subsystem's FDT.
type Subtree struct {
	Name  string `json:"name"`
	FDTPA Hex    `json:"fdt_pa"` // 0 when the "fdt" property is unusable
	// Size, Compatible and DTS are empty when the FDT could not be read.
	Size       int    `json:"size"`
	Compatible string `json:"compatible"`
	DTS        string `json:"dts"`
}

// LUO is the LUO FDT and the blocks it points to.
type LUO struct {
	Compatible       string `json:"compatible"`
	LiveupdateNumber uint64 `json:"liveupdate_number"`
	SessionHeaderPA  Hex    `json:"session_header_pa"`
	FLBHeaderPA      Hex    `json:"flb_header_pa"`
	// FLB and Sessions are nil when their block could not be mapped.
	FLB      *FLBTable     `json:"flb"`
	Sessions *SessionTable `json:"sessions"`
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

// SessionTable is the session block: struct luo_session_header_ser and
// its entries.
type SessionTable struct {
	PA    Hex    `json:"pa"`
	Count uint64 `json:"count"` // as the header claims it
	// Sessions are the first min(Count, LUO_SESSION_MAX) entries.
	Sessions []Session `json:"sessions"`
}

// Session is one struct luo_session_ser and its file block.
type Session struct {
	Index          int    `json:"index"`
	Name           string `json:"name"`
	NameTerminated bool   `json:"name_terminated"`
	FilesPA        Hex    `json:"files_pa"`
	Count          uint64 `json:"count"` // files, as the entry claims
	// Files are the first min(Count, LUO_FILE_MAX) entries of the file
	// block; empty when the block could not be mapped.
	Files []File `json:"files"`
}

// File is one struct luo_file_ser.
type File struct {
	Index                int    `json:"index"`
	Compatible           string `json:"compatible"`
	CompatibleTerminated bool   `json:"compatible_terminated"`
	Data                 Hex    `json:"data"`
	Token                Hex    `json:"token"`
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

// Memory is the preserved-memory map.
type Memory struct {
	Blocks int    `json:"blocks"` // preserved blocks (2^order pages each)
	Bytes  uint64 `json:"bytes"`  // their total size
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

// Finding is one thing wrong with the handover.
type Finding struct {
	// Where names the structure: "kho root", "preserved-memory map",
	// "subtree LUO", "LUO FDT", "FLB table", "sessions", "kho-sim metadata",
	// "payloads".
	Where string `json:"where"`
	What  string `json:"what"`
	// Kernel says what a real Linux 7.0 kernel does with it ("" when the
	// kernel does not notice or it concerns kho-sim's own data).
	Kernel string `json:"kernel"`
}

func (f Finding) String() string {
	s := f.Where + ": " + f.What
	if f.Kernel != "" {
		s += "; " + f.Kernel
	}
	return s
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

package abi

import (
	"encoding/json"
	"strconv"

	"github.com/kho-sim/kho-sim/pkg/flb"
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/luo"
)

// Where the kernel defines the constants Layouts does not show.
const (
	SourceKHOABI     = "include/linux/kho/abi/kexec_handover.h"
	SourceUAPI       = "include/uapi/linux/liveupdate.h"
	SourceLUOSession = "kernel/liveupdate/luo_session.c"
	SourceLUOFile    = "kernel/liveupdate/luo_file.c"
	SourceLUOFLB     = "kernel/liveupdate/luo_flb.c"
	SourcePageSize   = "arch/x86/include/asm/page_types.h"
	SourceMaxOrder   = "include/linux/mmzone.h (x86-64 default)"
)

// Constant is a kernel macro that kho-sim's handover depends on: a number
// (a size, count or limit) or a string (a compatible, a node or property
// name).
type Constant struct {
	Name   string // the kernel's macro name
	IsText bool   // Text holds the value; otherwise Number does
	Number int64
	Text   string
	Source string // kernel file that defines it
}

// Value renders the value as C would write it: 63, "luo-v1".
func (c Constant) Value() string {
	if c.IsText {
		return strconv.Quote(c.Text)
	}
	return strconv.FormatInt(c.Number, 10)
}

// MarshalJSON gives {"name": ..., "value": 63 or "luo-v1", "source": ...}.
func (c Constant) MarshalJSON() ([]byte, error) {
	v := struct {
		Name   string `json:"name"`
		Value  any    `json:"value"`
		Source string `json:"source"`
	}{c.Name, c.Number, c.Source}
	if c.IsText {
		v.Value = c.Text
	}
	return json.Marshal(v)
}

func number(name string, v int64, source string) Constant {
	return Constant{Name: name, Number: v, Source: source}
}

func text(name, v, source string) Constant {
	return Constant{Name: name, IsText: true, Text: v, Source: source}
}

// Constants returns the sizes, limits, compatibles and names of the
// handover, from the encoders' own constants, in the order of the chain:
// page size, KHO root, LUO FDT, sessions, files, FLBs.
func Constants() []Constant {
	return []Constant{
		number("PAGE_SIZE", kernel.PageSize, SourcePageSize),
		number("MAX_PAGE_ORDER", kho.MaxPageOrder, SourceMaxOrder),

		text("KHO_FDT_COMPATIBLE", kho.Compatible, SourceKHOABI),
		text("KHO_FDT_MEMORY_MAP_PROP_NAME", kho.PropMemoryMap, SourceKHOABI),
		text("KHO_FDT_SUB_TREE_PROP_NAME", kho.PropSubFDT, SourceKHOABI),
		number("KHOSER_BITMAP_SIZE", kho.ChunkCapacity, SourceKHO),

		number("LUO_FDT_SIZE", luo.FDTSize, SourceLUO),
		text("LUO_FDT_KHO_ENTRY_NAME", luo.FDTKHOEntryName, SourceLUO),
		text("LUO_FDT_COMPATIBLE", luo.FDTCompatible, SourceLUO),
		text("LUO_FDT_LIVEUPDATE_NUM", luo.FDTLiveupdateNum, SourceLUO),

		text("LUO_FDT_SESSION_NODE_NAME", luo.FDTSessionNode, SourceLUO),
		text("LUO_FDT_SESSION_COMPATIBLE", luo.FDTSessionCompatible, SourceLUO),
		text("LUO_FDT_SESSION_HEADER", luo.FDTSessionHeader, SourceLUO),
		number("LIVEUPDATE_SESSION_NAME_LENGTH", luo.SessionNameLen, SourceUAPI),
		number("LUO_SESSION_PGCNT", luo.SessionPages, SourceLUOSession),
		number("LUO_SESSION_MAX", luo.SessionMax, SourceLUOSession),

		number("LIVEUPDATE_HNDL_COMPAT_LENGTH", luo.HandlerCompatLen, SourceLUO),
		number("LUO_FILE_PGCNT", luo.FilePages, SourceLUOFile),
		number("LUO_FILE_MAX", luo.FileMax, SourceLUOFile),

		text("LUO_FDT_FLB_NODE_NAME", luo.FDTFLBNode, SourceLUO),
		text("LUO_FDT_FLB_COMPATIBLE", luo.FDTFLBCompatible, SourceLUO),
		text("LUO_FDT_FLB_HEADER", luo.FDTFLBHeader, SourceLUO),
		number("LIVEUPDATE_FLB_COMPAT_LENGTH", flb.NameLen, SourceLUO),
		number("LUO_FLB_PGCNT", flb.PageCount, SourceLUOFLB),
		number("LUO_FLB_MAX", flb.Max, SourceLUOFLB),
	}
}

// LookupConstant returns the constant with the kernel name name.
func LookupConstant(name string) (Constant, bool) {
	for _, c := range Constants() {
		if c.Name == name {
			return c, true
		}
	}
	return Constant{}, false
}

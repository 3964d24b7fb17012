package abi

import (
	"fmt"

	"github.com/kho-sim/kho-sim/pkg/flb"
	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/luo"
)

// Where the kernel declares the structs.
const (
	SourceLUO = "include/linux/kho/abi/luo.h"
	SourceKHO = "kernel/liveupdate/kexec_handover.c"
	// 7.2's linked blocks and kexec-metadata.
	SourceBlock    = "include/linux/kho/abi/block.h"
	SourceMetadata = "include/linux/kho/abi/kexec_metadata.h"
)

// Struct is the layout of one kernel struct as kho-sim writes it.
type Struct struct {
	Name   string  `json:"name"` // the kernel's struct tag, without "struct"
	Size   int     `json:"size"` // bytes
	Packed bool    `json:"packed"`
	Source string  `json:"source"` // kernel file that declares it
	Fields []Field `json:"fields"`
}

// Field is one member of a Struct.
type Field struct {
	Name   string `json:"name"`
	Offset int    `json:"offset"` // bytes from the start of the struct
	Size   int    `json:"size"`   // bytes
	// Type is the C type as CHeader declares it: "u64", "u32", "char[48]",
	// "struct luo_file_set_ser", "struct khoser_mem_bitmap_ptr[255]".
	Type string `json:"type"`
}

// Field returns the field called name.
func (s Struct) Field(name string) (Field, bool) {
	for _, f := range s.Fields {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

// Consistent reports whether the fields tile the struct: they start at 0,
// follow each other without gap or overlap, and end at Size. Layouts builds
// offsets from field sizes and takes Size from the encoder's own constant,
// so an error here means pkg/flb, pkg/luo or pkg/kho disagree with
// themselves.
func (s Struct) Consistent() error {
	off := 0
	for _, f := range s.Fields {
		if f.Size <= 0 {
			return fmt.Errorf("struct %s: field %s has size %d", s.Name, f.Name, f.Size)
		}
		if f.Offset != off {
			return fmt.Errorf("struct %s: field %s at offset %d, previous field ends at %d", s.Name, f.Name, f.Offset, off)
		}
		off += f.Size
	}
	if off != s.Size {
		return fmt.Errorf("struct %s: fields end at %d, size is %d", s.Name, off, s.Size)
	}
	return nil
}

// member is a field before its offset is known.
type member struct {
	name, typ string
	size      int
}

func u64(name string) member { return member{name, "u64", 8} }
func u32(name string) member { return member{name, "u32", 4} }

func chars(name string, n int) member { return member{name, fmt.Sprintf("char[%d]", n), n} }

func embed(name string, s Struct) member { return member{name, "struct " + s.Name, s.Size} }

func array(name string, s Struct, n int) member {
	return member{name, fmt.Sprintf("struct %s[%d]", s.Name, n), n * s.Size}
}

func sizeOf(members ...member) int {
	n := 0
	for _, m := range members {
		n += m.size
	}
	return n
}

// layout lays members out one after the other, as both a packed struct and
// the naturally aligned khoser structs (no padding needed) do. size is the
// encoder's own idea of the struct's size, which Consistent checks.
func layout(name, source string, packed bool, size int, members ...member) Struct {
	s := Struct{Name: name, Size: size, Packed: packed, Source: source, Fields: make([]Field, 0, len(members))}
	off := 0
	for _, m := range members {
		s.Fields = append(s.Fields, Field{Name: m.name, Offset: off, Size: m.size, Type: m.typ})
		off += m.size
	}
	return s
}

// Layouts returns the structs kho-sim writes, in the order the handover
// reaches them: FLB page, session block, file block, memory map chunk of
// 7.0, then 7.2's luo_ser, block header and kexec-metadata. A struct that
// another embeds comes first. luo-v2's 24-byte luo_ser (7.2's without the
// compatible) is left out: no released kernel has it, so no BTF to check
// it against.
func Layouts() []Struct {
	flbHeader := layout("luo_flb_header_ser", SourceLUO, true, flb.HeaderSize,
		u64("pgcnt"), u64("count"))
	flbEntry := layout("luo_flb_ser", SourceLUO, true, flb.EntrySize,
		chars("name", flb.NameLen), u64("data"), u64("count"))

	sessionHeader := layout("luo_session_header_ser", SourceLUO, true, luo.SessionHeaderSize,
		u64("count"))
	fileSet := layout("luo_file_set_ser", SourceLUO, true, luo.SessionEntrySize-luo.SessionNameLen,
		u64("files"), u64("count"))
	session := layout("luo_session_ser", SourceLUO, true, luo.SessionEntrySize,
		chars("name", luo.SessionNameLen), embed("file_set_ser", fileSet))
	file := layout("luo_file_ser", SourceLUO, true, luo.FileEntrySize,
		chars("compatible", luo.HandlerCompatLen), u64("data"), u64("token"))

	// pkg/kho keeps these sizes private; KHOSER_BITMAP_SIZE is what it
	// exports, and a test ties the two together.
	hdrMembers := []member{u64("next"), u32("order"), u32("num_elms")}
	chunkHdr := layout("khoser_mem_chunk_hdr", SourceKHO, false, sizeOf(hdrMembers...), hdrMembers...)
	ptrMembers := []member{u64("phys_start"), u64("bitmap")}
	bitmapPtr := layout("khoser_mem_bitmap_ptr", SourceKHO, false, sizeOf(ptrMembers...), ptrMembers...)
	chunkMembers := []member{embed("hdr", chunkHdr), array("bitmaps", bitmapPtr, kho.ChunkCapacity)}
	chunk := layout("khoser_mem_chunk", SourceKHO, false, sizeOf(chunkMembers...), chunkMembers...)

	ser := layout("luo_ser", SourceLUO, true, luo.SerSize,
		chars("compatible", luo.SerCompatLen), u64("liveupdate_num"), u64("sessions_pa"), u64("flbs_pa"))
	blockHdr := layout("kho_block_header_ser", SourceBlock, true, luo.BlockHeaderSize,
		u64("next"), u64("count"))
	metadata := layout("kho_kexec_metadata", SourceMetadata, true, kho.KexecMetadataSize,
		u32("version"), chars("previous_release", kho.ReleaseLen), u32("kexec_count"))

	return []Struct{flbHeader, flbEntry, sessionHeader, fileSet, session, file, chunkHdr, bitmapPtr, chunk, ser, blockHdr, metadata}
}

// LookupStruct returns the struct called name (without "struct").
func LookupStruct(name string) (Struct, bool) {
	for _, s := range Layouts() {
		if s.Name == name {
			return s, true
		}
	}
	return Struct{}, false
}

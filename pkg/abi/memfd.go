package abi

import (
	"fmt"

	"github.com/cilium/ebpf/btf"

	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/memfd"
)

// Where Linux 7.2 declares the memfd-v2 and vmalloc preservation structs.
const (
	SourceMemfd   = "include/linux/kho/abi/memfd.h"
	SourceVmalloc = "include/linux/kho/abi/kexec_handover.h"
)

// Bitfield is a struct member declared with a width: Bits bits starting at
// bit Bit of the struct (GCC on x86-64 allocates them from the low bit of
// their storage unit up).
type Bitfield struct {
	Name string `json:"name"`
	Bit  int    `json:"bit"`
	Bits int    `json:"bits"`
}

// Layout72 is a struct of the 7.2 memfd-v2 ABI: Struct holds the members
// that are whole bytes, Bitfields those that are not.
type Layout72 struct {
	Struct
	Bitfields []Bitfield `json:"bitfields,omitempty"`
}

// Consistent reports whether the fields and bitfields together tile the
// struct without gap or overlap.
func (l Layout72) Consistent() error {
	type span struct {
		name       string
		start, end int // bits
	}
	var spans []span
	for _, f := range l.Fields {
		spans = append(spans, span{f.Name, f.Offset * 8, (f.Offset + f.Size) * 8})
	}
	for _, b := range l.Bitfields {
		if b.Bits <= 0 {
			return fmt.Errorf("struct %s: bitfield %s of %d bits", l.Name, b.Name, b.Bits)
		}
		spans = append(spans, span{b.Name, b.Bit, b.Bit + b.Bits})
	}
	covered := make([]string, l.Size*8)
	for _, s := range spans {
		if s.start < 0 || s.end > len(covered) {
			return fmt.Errorf("struct %s: %s at bits %d-%d outside %d bytes", l.Name, s.name, s.start, s.end, l.Size)
		}
		for i := s.start; i < s.end; i++ {
			if covered[i] != "" {
				return fmt.Errorf("struct %s: %s and %s both hold bit %d", l.Name, covered[i], s.name, i)
			}
			covered[i] = s.name
		}
	}
	for i, c := range covered {
		if c == "" {
			return fmt.Errorf("struct %s: bit %d belongs to no field", l.Name, i)
		}
	}
	return nil
}

func u16(name string) member { return member{name, "u16", 2} }

// MemfdLayouts returns the structs of 7.2's memfd-v2 state as pkg/memfd
// and pkg/kho encode them: the vmalloc chunk header, chunk and descriptor,
// then the folio entry and memfd_luo_ser. The chunk header's and
// descriptor's pointers are DECLARE_KHOSER_PTR unions of 8 bytes.
func MemfdLayouts() []Layout72 {
	hdr := layout("kho_vmalloc_hdr", SourceVmalloc, false, kho.VmallocChunkHeaderSize, u64("next"))
	chunkMembers := []member{embed("hdr", hdr), {"phys", fmt.Sprintf("u64[%d]", kho.VmallocChunkEntries), 8 * kho.VmallocChunkEntries}}
	chunk := layout("kho_vmalloc_chunk", SourceVmalloc, false, sizeOf(chunkMembers...), chunkMembers...)
	vmalloc := layout("kho_vmalloc", SourceVmalloc, false, kho.VmallocSize,
		u64("first"), u32("total_pages"), u16("flags"), u16("order"))
	folio := Layout72{
		Struct: layout("memfd_luo_folio_ser", SourceMemfd, true, memfd.FolioSerSize, member{"index", "u64", 8}),
		Bitfields: []Bitfield{
			{"pfn", 0, memfd.PFNBits},
			{"flags", memfd.PFNBits, memfd.FlagBits},
		},
	}
	// The bitfields come first: index follows their u64.
	folio.Fields[0].Offset = 8
	ser := layout("memfd_luo_ser", SourceMemfd, true, memfd.SerSize,
		u64("pos"), u64("size"), u32("seals"), u32("flags"), u64("nr_folios"), embed("folios", vmalloc))
	return []Layout72{{Struct: hdr}, {Struct: chunk}, {Struct: vmalloc}, folio, {Struct: ser}}
}

// CheckBTF72 compares every struct of MemfdLayouts with spec as CheckBTF
// does for Layouts, and each bitfield with a BTF member of the same name,
// bit offset and width.
func CheckBTF72(spec *btf.Spec) ([]StructResult, error) {
	var results []StructResult
	for _, want := range MemfdLayouts() {
		r, err := checkStruct(spec, want.Struct, func(got *btf.Struct) []Difference { return CompareLayout72(want, got) })
		if err != nil {
			return nil, fmt.Errorf("struct %s: %w", want.Name, err)
		}
		results = append(results, r)
	}
	return results, nil
}

// CompareLayout72 is CompareStruct that also knows bitfields: a member the
// layout declares as a bitfield must be one in got, at the same bit and of
// the same width.
func CompareLayout72(want Layout72, got *btf.Struct) []Difference {
	bitfield := make(map[string]Bitfield, len(want.Bitfields))
	for _, b := range want.Bitfields {
		bitfield[b.Name] = b
	}
	var diffs []Difference
	for _, d := range CompareStruct(want.Struct, got) {
		// CompareStruct sees the bitfields as members kho-sim lacks.
		if _, ok := bitfield[d.Field]; ok && !d.Want.Present {
			continue
		}
		diffs = append(diffs, d)
	}
	for _, b := range want.Bitfields {
		w := Slot{Present: true, Offset: b.Bit / 8, Size: 8, Problem: fmt.Sprintf("bitfield of %d bits at bit %d", b.Bits, b.Bit)}
		var m *btf.Member
		for i := range got.Members {
			if got.Members[i].Name == b.Name {
				m = &got.Members[i]
				break
			}
		}
		switch {
		case m == nil:
			diffs = append(diffs, Difference{Field: b.Name, Want: w})
		case int(m.BitfieldSize) != b.Bits || int(m.Offset) != b.Bit:
			diffs = append(diffs, Difference{Field: b.Name, Want: w, Got: slotOf(*m)})
		}
	}
	return diffs
}

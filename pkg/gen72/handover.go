package gen72

import (
	"fmt"
	"sort"
)

// Handover is a decoded Linux 7.2 handover.
type Handover struct {
	Root      *Root
	MemoryMap *MemoryMap
	LUO       *LUO           // nil if the root has no "LUO" child
	Metadata  *KexecMetadata // nil if the root has no "kexec-metadata" child
}

// Decode reads the whole handover whose root FDT of rootSize bytes lies at
// rootPA (Setup.FDTAddr and Setup.FDTSize), the way the next kernel
// consumes it: the root, the memory map, the LUO state, the kexec metadata.
// Beyond each part's own checks it demands that every structure lies
// inside one preserved block and that no page serves two structures.
func Decode(mem Memory, rootPA, rootSize uint64) (*Handover, error) {
	root, err := ReadRoot(mem, rootPA, rootSize)
	if err != nil {
		return nil, err
	}
	mm, err := ReadMemoryMap(mem, root.MemoryMapPA)
	if err != nil {
		return nil, fmt.Errorf("memory map at %#x: %w", root.MemoryMapPA, err)
	}
	h := &Handover{Root: root, MemoryMap: mm}
	br := &blockReader{mem: mem, claimed: newClaims()}
	if err := br.claimed.claim("KHO root FDT", root.PA, root.TotalSize); err != nil {
		return nil, err
	}
	if sub := root.Subtree(LUOName); sub != nil {
		if h.LUO, err = readLUO(br, *sub); err != nil {
			return nil, err
		}
	}
	if sub := root.Subtree(MetadataName); sub != nil {
		if h.Metadata, err = readMetadata(mem, br.claimed, *sub); err != nil {
			return nil, err
		}
	}
	for _, s := range h.Structures() {
		if !mm.Contains(s.PA, s.Size) {
			return nil, fmt.Errorf("%s at %#x (%d bytes): %w", s.What, s.PA, s.Size, ErrNotPreserved)
		}
	}
	return h, nil
}

// Structure is one piece of the handover in memory.
type Structure struct {
	What     string
	PA, Size uint64
}

// Structures lists the memory of every decoded structure, sorted by
// address: the root FDT, each child's blob, the session and file blocks,
// the FLB page. Radix nodes are in MemoryMap.Nodes.
func (h *Handover) Structures() []Structure {
	var out []Structure
	if h.Root != nil {
		out = append(out, Structure{"KHO root FDT", h.Root.PA, h.Root.TotalSize})
		for _, s := range h.Root.Subtrees {
			out = append(out, Structure{fmt.Sprintf("subtree %q", s.Name), s.PA, s.Size})
		}
	}
	if l := h.LUO; l != nil {
		for i, pa := range l.SessionBlocks {
			out = append(out, Structure{fmt.Sprintf("session block %d", i), pa, PageSize})
		}
		for _, s := range l.Sessions {
			for i, pa := range s.FileBlocks {
				out = append(out, Structure{fmt.Sprintf("session %q file block %d", s.Name, i), pa, PageSize})
			}
		}
		if l.FLB != nil {
			out = append(out, Structure{"FLB page", l.FLB.PA, l.FLB.PageCount * PageSize})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].PA < out[j].PA })
	return out
}

// Pages returns every page the handover occupies, ascending and without
// repeats: the pages of each structure and the radix nodes. With the pages
// of Setup's scratch array and the files' own data these are what a dump
// of the handover has to hold.
func (h *Handover) Pages() []uint64 {
	set := make(map[uint64]bool)
	for _, s := range h.Structures() {
		if s.Size == 0 {
			continue
		}
		for p := s.PA &^ (PageSize - 1); p < s.PA+s.Size; p += PageSize {
			set[p] = true
		}
	}
	if h.MemoryMap != nil {
		for _, pa := range h.MemoryMap.Nodes {
			set[pa] = true
		}
	}
	out := make([]uint64, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

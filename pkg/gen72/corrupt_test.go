package gen72

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/kho-sim/kho-sim/pkg/fdt"
)

// damage is one way to corrupt a copy of the real handover.
type damage struct {
	name    string
	corrupt func(t *testing.T, c *corrupter)
	want    error
}

// corrupter edits a copy of the real handover's pages.
type corrupter struct {
	s    *PageStore
	h    *Handover // the undamaged decode, for addresses
	next uint64    // next free page for new radix nodes
}

func (c *corrupter) put64(t *testing.T, pa uint64, v uint64) {
	t.Helper()
	p := c.s.Page(pa &^ (PageSize - 1))
	if p == nil {
		t.Fatalf("no page at %#x", pa)
	}
	binary.LittleEndian.PutUint64(p[pa%PageSize:], v)
}

func (c *corrupter) put(t *testing.T, pa uint64, b []byte) {
	t.Helper()
	p := c.s.Page(pa &^ (PageSize - 1))
	if p == nil {
		t.Fatalf("no page at %#x", pa)
	}
	copy(p[pa%PageSize:], b)
}

// editRoot rewrites the root FDT through pkg/fdt.
func (c *corrupter) editRoot(t *testing.T, edit func(root *fdt.Node)) {
	t.Helper()
	pa := c.h.Root.PA
	tree, err := fdt.Parse(c.s.Page(pa))
	if err != nil {
		t.Fatal(err)
	}
	edit(tree.Root)
	blob, err := fdt.Encode(tree)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.s.Add(pa, blob); err != nil {
		t.Fatal(err)
	}
}

func setProp(n *fdt.Node, name string, v []byte) {
	for i := range n.Props {
		if n.Props[i].Name == name {
			n.Props[i].Value = v
			return
		}
	}
	n.Props = append(n.Props, fdt.Property{Name: name, Value: v})
}

func le64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

// setKey sets (or clears) the bitmap bit of key, creating missing radix
// nodes in fresh pages.
func (c *corrupter) setKey(t *testing.T, key uint64, on bool) {
	t.Helper()
	node := c.h.Root.MemoryMapPA
	for level := treeDepth - 1; level > 0; level-- {
		shift := uint((level-1)*tableBits + bitmapBits)
		slot := node + (key>>shift)%(1<<tableBits)*8
		child := binary.LittleEndian.Uint64(c.s.Page(node)[slot%PageSize:])
		if child == 0 {
			child = c.next
			c.next += PageSize
			if err := c.s.Add(child, nil); err != nil {
				t.Fatal(err)
			}
			c.put64(t, slot, child)
		}
		node = child
	}
	bit := key % (1 << bitmapBits)
	p := c.s.Page(node)
	if on {
		p[bit/8] |= 1 << (bit % 8)
	} else {
		p[bit/8] &^= 1 << (bit % 8)
	}
}

func TestDecodeDamage(t *testing.T) {
	sessionEntry := func(c *corrupter, i uint64) uint64 {
		return c.h.LUO.SessionsPA + blockHeaderSize + i*SessionEntrySize
	}
	fileEntry := func(c *corrupter, session int, i uint64) uint64 {
		return c.h.LUO.Sessions[session].FilesPA + blockHeaderSize + i*FileEntrySize
	}
	flbEntry := func(c *corrupter, i uint64) uint64 {
		return c.h.LUO.FLBsPA + FLBHeaderSize + i*FLBEntrySize
	}
	tests := []damage{
		{"root compatible kho-v3", func(t *testing.T, c *corrupter) {
			c.editRoot(t, func(r *fdt.Node) { setProp(r, "compatible", []byte("kho-v3\x00")) })
		}, ErrBadCompatible},
		{"root compatible list", func(t *testing.T, c *corrupter) {
			c.editRoot(t, func(r *fdt.Node) { setProp(r, "compatible", []byte("kho-v4\x00kho-v3\x00")) })
		}, ErrBadCompatible},
		{"memory map a u32", func(t *testing.T, c *corrupter) {
			c.editRoot(t, func(r *fdt.Node) { setProp(r, MemoryMapProp, []byte{0, 0x30, 0x16, 0}) })
		}, ErrMissing},
		{"child without blob-size", func(t *testing.T, c *corrupter) {
			c.editRoot(t, func(r *fdt.Node) { r.Child(LUOName).Props = r.Child(LUOName).Props[1:] })
		}, ErrMissing},
		{"LUO blob-size 31", func(t *testing.T, c *corrupter) {
			c.editRoot(t, func(r *fdt.Node) { setProp(r.Child(LUOName), SizeProp, le64(31)) })
		}, ErrBadSize},
		{"blob-size beyond kho_alloc_preserve", func(t *testing.T, c *corrupter) {
			c.editRoot(t, func(r *fdt.Node) { setProp(r.Child(MetadataName), SizeProp, le64(MaxBlobSize+1)) })
		}, ErrBadSize},
		{"LUO blob misaligned", func(t *testing.T, c *corrupter) {
			c.editRoot(t, func(r *fdt.Node) { setProp(r.Child(LUOName), DataProp, le64(c.h.LUO.PA+8)) })
		}, ErrBadAddress},
		{"LUO blob is the FLB page", func(t *testing.T, c *corrupter) {
			c.editRoot(t, func(r *fdt.Node) { setProp(r.Child(MetadataName), DataProp, le64(c.h.LUO.FLBsPA)) })
		}, ErrShared},
		{"LUO compatible luo-v4", func(t *testing.T, c *corrupter) { c.put(t, c.h.LUO.PA, []byte("luo-v4")) }, ErrBadCompatible},
		{"LUO compatible unterminated", func(t *testing.T, c *corrupter) { c.put(t, c.h.LUO.PA, []byte("luo-v5xy")) }, ErrBadString},
		{"liveupdate number 0", func(t *testing.T, c *corrupter) { c.put64(t, c.h.LUO.PA+8, 0) }, ErrBadCount},
		{"sessions_pa unmapped", func(t *testing.T, c *corrupter) { c.put64(t, c.h.LUO.PA+16, 0x7fff0000) }, ErrUnavailable},
		{"session block count 0", func(t *testing.T, c *corrupter) { c.put64(t, c.h.LUO.SessionsPA+8, 0) }, ErrBadCount},
		{"session block count 52", func(t *testing.T, c *corrupter) {
			c.put64(t, c.h.LUO.SessionsPA+8, SessionsPerBlock+1)
		}, ErrBadCount},
		{"session block links to itself", func(t *testing.T, c *corrupter) {
			c.put64(t, c.h.LUO.SessionsPA, c.h.LUO.SessionsPA)
		}, ErrLoop},
		{"session block links to a file block", func(t *testing.T, c *corrupter) {
			c.put64(t, c.h.LUO.SessionsPA, c.h.LUO.Sessions[1].FilesPA)
		}, ErrShared},
		{"two sessions share a file block", func(t *testing.T, c *corrupter) {
			c.put64(t, sessionEntry(c, 1)+64, c.h.LUO.Sessions[0].FilesPA)
		}, ErrShared},
		{"file block links to the LUO blob", func(t *testing.T, c *corrupter) {
			c.put64(t, c.h.LUO.Sessions[0].FilesPA, c.h.LUO.PA)
		}, ErrShared},
		{"FLB page is a session block", func(t *testing.T, c *corrupter) { c.put64(t, c.h.LUO.PA+24, c.h.LUO.SessionsPA) }, ErrShared},
		{"session name unterminated", func(t *testing.T, c *corrupter) {
			c.put(t, sessionEntry(c, 0), []byte("0123456789012345678901234567890123456789012345678901234567890123"))
		}, ErrBadString},
		{"duplicate session name", func(t *testing.T, c *corrupter) { c.put(t, sessionEntry(c, 1), []byte("kho-sim-a")) }, ErrDuplicate},
		{"session file count too large", func(t *testing.T, c *corrupter) { c.put64(t, sessionEntry(c, 0)+72, 4) }, ErrBadCount},
		{"files without a block", func(t *testing.T, c *corrupter) { c.put64(t, sessionEntry(c, 1)+64, 0) }, ErrBadCount},
		{"file block count over the block", func(t *testing.T, c *corrupter) {
			c.put64(t, c.h.LUO.Sessions[0].FilesPA+8, FilesPerBlock+1)
		}, ErrBadCount},
		{"duplicate token", func(t *testing.T, c *corrupter) { c.put64(t, fileEntry(c, 0, 2)+56, 0x1001) }, ErrDuplicate},
		{"file compatible unterminated", func(t *testing.T, c *corrupter) {
			c.put(t, fileEntry(c, 1, 0), []byte("memfd-v2-with-a-compatible-of-48-chars-exactly!!"))
		}, ErrBadString},
		{"FLB page misaligned", func(t *testing.T, c *corrupter) { c.put64(t, c.h.LUO.PA+24, c.h.LUO.FLBsPA+16) }, ErrBadAddress},
		{"FLB pgcnt 0", func(t *testing.T, c *corrupter) { c.put64(t, c.h.LUO.FLBsPA, 0) }, ErrBadSize},
		{"FLB count 64", func(t *testing.T, c *corrupter) { c.put64(t, c.h.LUO.FLBsPA+8, 64) }, ErrBadCount},
		{"FLB count huge", func(t *testing.T, c *corrupter) { c.put64(t, c.h.LUO.FLBsPA+8, 1<<62) }, ErrBadCount},
		{"FLB pgcnt 2 reaches an unpreserved page", func(t *testing.T, c *corrupter) {
			c.put64(t, c.h.LUO.FLBsPA, 2)
			c.s.Add(c.h.LUO.FLBsPA+PageSize, nil)
		}, ErrNotPreserved},
		{"FLB name of 48 characters", func(t *testing.T, c *corrupter) {
			c.put(t, flbEntry(c, 1), []byte("liveupdate-test-flb-with-a-name-of-48-characters"))
		}, ErrBadString},
		{"duplicate FLB name", func(t *testing.T, c *corrupter) { c.put(t, flbEntry(c, 2), []byte("liveupdate-test-flb-v0")) }, ErrDuplicate},
		{"FLB count 0", func(t *testing.T, c *corrupter) { c.put64(t, flbEntry(c, 0)+56, 0) }, ErrBadCount},
		{"metadata version 2", func(t *testing.T, c *corrupter) { c.put(t, c.h.Metadata.PA, []byte{2}) }, ErrBadCompatible},
		{"metadata kexec_count 0", func(t *testing.T, c *corrupter) { c.put(t, c.h.Metadata.PA+69, []byte{0, 0, 0, 0}) }, ErrBadCount},
		{"metadata release unterminated", func(t *testing.T, c *corrupter) {
			c.put(t, c.h.Metadata.PA+4, []byte("7.2.13-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"[:65]))
		}, ErrBadString},
		{"FLB page not preserved", func(t *testing.T, c *corrupter) { c.setKey(t, Block{PA: c.h.LUO.FLBsPA}.Key(), false) }, ErrNotPreserved},
		{"root FDT not preserved", func(t *testing.T, c *corrupter) { c.setKey(t, Block{PA: c.h.Root.PA}.Key(), false) }, ErrNotPreserved},
		{"overlapping blocks", func(t *testing.T, c *corrupter) { c.setKey(t, Block{PA: c.h.LUO.PA, Order: 1}.Key(), true) }, ErrOverlap},
		{"key without an order", func(t *testing.T, c *corrupter) { c.setKey(t, 1<<53|5, true) }, ErrBadOrder},
		{"order beyond MaxOrder", func(t *testing.T, c *corrupter) { c.setKey(t, 1<<(order0Bit-MaxOrder-1), true) }, ErrBadOrder},
		{"radix node twice", func(t *testing.T, c *corrupter) {
			root := c.h.Root.MemoryMapPA
			c.put64(t, root+511*8, c.h.MemoryMap.Nodes[1])
		}, ErrLoop},
		{"radix root links to itself", func(t *testing.T, c *corrupter) {
			root := c.h.Root.MemoryMapPA
			c.put64(t, root+511*8, root)
		}, ErrLoop},
		{"radix node misaligned", func(t *testing.T, c *corrupter) {
			c.put64(t, c.h.Root.MemoryMapPA+511*8, 0x123)
		}, ErrBadAddress},
		{"radix node beyond 52 bits", func(t *testing.T, c *corrupter) {
			c.put64(t, c.h.Root.MemoryMapPA+511*8, 0xffff888000000000)
		}, ErrBadAddress},
		{"radix leaf missing", func(t *testing.T, c *corrupter) {
			c.s.Remove(c.h.MemoryMap.Nodes[len(c.h.MemoryMap.Nodes)-1])
		}, ErrUnavailable},
		{"memory map null", func(t *testing.T, c *corrupter) {
			c.editRoot(t, func(r *fdt.Node) { setProp(r, MemoryMapProp, le64(0)) })
		}, ErrBadAddress},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, h := realHandover(t)
			c := &corrupter{s: d.Pages.Clone(), h: h, next: 0x20000000}
			tt.corrupt(t, c)
			got, err := Decode(c.s, d.Setup.FDTAddr, d.Setup.FDTSize)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decode: %v, want %v", err, tt.want)
			}
			if got != nil {
				t.Errorf("Decode returned %+v with the error", got)
			}
			// The original store is untouched.
			if _, err := Decode(d.Pages, d.Setup.FDTAddr, d.Setup.FDTSize); err != nil {
				t.Errorf("the damage leaked into the original: %v", err)
			}
		})
	}
}

func TestDecodeRootAddress(t *testing.T) {
	d := loadDump(t, "handover.txt")
	for _, tt := range []struct {
		name     string
		pa, size uint64
		want     error
	}{
		{"null", 0, PageSize, ErrBadAddress},
		{"misaligned", d.Setup.FDTAddr + 4, PageSize, ErrBadAddress},
		{"beyond 52 bits", 1 << 52, PageSize, ErrBadAddress},
		{"size too large", d.Setup.FDTAddr, MaxRootSize + 1, ErrBadSize},
		{"size runs into a missing page", d.Setup.FDTAddr, MaxRootSize, ErrUnavailable},
		{"not an FDT", d.Setup.ScratchAddr &^ (PageSize - 1), PageSize, new(fdt.ParseError)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h, err := Decode(d.Pages, tt.pa, tt.size)
			if pe, ok := tt.want.(*fdt.ParseError); ok {
				if !errors.As(err, &pe) {
					t.Fatalf("Decode: %v, want an fdt.ParseError", err)
				}
			} else if !errors.Is(err, tt.want) {
				t.Fatalf("Decode: %v, want %v", err, tt.want)
			}
			if h != nil {
				t.Error("handover returned with the error")
			}
		})
	}
	// Size 0 means one page, as the kernel passes.
	if _, err := Decode(d.Pages, d.Setup.FDTAddr, 0); err != nil {
		t.Errorf("size 0: %v", err)
	}
}

// TestPartsAlone reads the parts without Decode's cross-checks, as a
// caller with only part of a handover would.
func TestPartsAlone(t *testing.T) {
	d, h := realHandover(t)
	l, err := ReadLUO(d.Pages, *h.Root.Subtree(LUOName))
	if err != nil || l.FileCount() != 4 || l.Session("kho-sim-b") == nil || l.Session("nope") != nil {
		t.Errorf("ReadLUO: %+v, %v", l, err)
	}
	m, err := ReadKexecMetadata(d.Pages, *h.Root.Subtree(MetadataName))
	if err != nil || *m != *h.Metadata {
		t.Errorf("ReadKexecMetadata: %+v, %v", m, err)
	}
	if h.Root.Subtree("memblock") != nil {
		t.Error("found a memblock child that is not there")
	}
	// A handover without LUO state: sessions_pa and flbs_pa 0.
	s := d.Pages.Clone()
	binary.LittleEndian.PutUint64(s.Page(l.PA)[16:], 0)
	binary.LittleEndian.PutUint64(s.Page(l.PA)[24:], 0)
	empty, err := ReadLUO(s, *h.Root.Subtree(LUOName))
	if err != nil || len(empty.Sessions) != 0 || empty.FLB != nil {
		t.Errorf("empty LUO: %+v, %v", empty, err)
	}
}

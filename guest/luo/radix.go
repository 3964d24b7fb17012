package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"github.com/kho-sim/kho-sim/pkg/fdt"
	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/luo"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// The radix tree that maps preserved memory is the one part of a handover
// that is not itself preserved: its nodes are ordinary pages of the old
// kernel, read by the new kernel early in boot and then free memory it
// reuses long before /init runs. So stage 1 snapshots its outgoing tree
// (after the last preservation; kexec_file_load and reboot(KEXEC) preserve
// nothing new) and ships the snapshot in the next initramfs, and stage 2
// reads the tree from the snapshot and everything else from /dev/mem.

const outgoingFDT = "/sys/kernel/debug/kho/out/fdt"

// outgoingMemoryMapPA returns the preserved-memory-map of the outgoing
// root FDT. debugfs sizes kho/out/fdt when KHO initialises, before LUO adds
// its child, so the blob is truncated and pkg/fdt rightly refuses it; the
// root's properties come first in the struct block, so a bounded scan of
// them suffices.
func outgoingMemoryMapPA() (uint64, error) {
	b, err := os.ReadFile(outgoingFDT)
	if errors.Is(err, os.ErrNotExist) {
		return findOutgoingRoot()
	}
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", outgoingFDT, err)
	}
	pa, err := memoryMapFromFDTPrefix(b)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", outgoingFDT, err)
	}
	return pa, nil
}

// outgoingLUO is the outgoing LUO blob as debugfs shows it.
const outgoingLUO = "/sys/kernel/debug/kho/out/sub_fdts/LUO"

// findOutgoingRoot finds the outgoing root FDT in RAM and returns its
// preserved-memory-map. A kernel that itself booted from a handover never
// publishes kho/out/fdt (kho_init returns right after
// kho_in_debugfs_init), but it publishes its LUO blob: the outgoing root
// is the one kho-v4 FDT page in System RAM whose "LUO" child's blob holds
// the bytes debugfs shows (the incoming root, still in memory, names the
// previous kernel's blob).
func findOutgoingRoot() (uint64, error) {
	want, err := os.ReadFile(outgoingLUO)
	if err != nil {
		return 0, fmt.Errorf("no %s, and no outgoing LUO blob to find the root by: %w", outgoingFDT, err)
	}
	entries, err := physmem.ReadIOMem("/proc/iomem")
	if err != nil {
		return 0, err
	}
	ram, err := physmem.SystemRAM(entries)
	if err != nil {
		return 0, err
	}
	mem, err := openDevMem()
	if err != nil {
		return 0, err
	}
	defer mem.f.Close()
	var found []uint64
	var mapPA uint64
	chunk := make([]byte, maxDevMemRead)
	for _, e := range ram {
		for pa := e.Start; pa < e.End(); pa += uint64(len(chunk)) {
			n, _ := mem.f.ReadAt(chunk[:min(uint64(len(chunk)), e.End()-pa)], int64(pa))
			for off := 0; off+physmem.PageSize <= n; off += physmem.PageSize {
				page := chunk[off : off+physmem.PageSize]
				if binary.BigEndian.Uint32(page) != 0xd00dfeed {
					continue
				}
				if m, ok := rootWithLUO(mem, page, want); ok {
					found, mapPA = append(found, pa+uint64(off)), m
				}
			}
		}
	}
	if len(found) != 1 {
		return 0, fmt.Errorf("no %s: %d roots in RAM hold the outgoing LUO blob (%#x), want 1", outgoingFDT, len(found), found)
	}
	return mapPA, nil
}

// rootWithLUO reports whether page is a kho-v4 root whose "LUO" child's
// blob is want, and returns its preserved-memory-map.
func rootWithLUO(mem *devMem, page, want []byte) (uint64, bool) {
	l, err := fdt.NewLookup(page)
	if err != nil || l.CheckCompatible(0, kho.CompatibleV4) != nil {
		return 0, false
	}
	m, err := l.Prop(0, kho.PropMemoryMap)
	if err != nil || len(m) != 8 {
		return 0, false
	}
	child, err := l.Subnode(0, luo.FDTKHOEntryName)
	if err != nil {
		return 0, false
	}
	pa, err := l.Prop(child, kho.PropBlobData)
	if err != nil || len(pa) != 8 {
		return 0, false
	}
	blob := make([]byte, len(want))
	if _, err := mem.f.ReadAt(blob, int64(binary.LittleEndian.Uint64(pa))); err != nil || !bytes.Equal(blob, want) {
		return 0, false
	}
	return binary.LittleEndian.Uint64(m), true
}

// memoryMapFromFDTPrefix finds preserved-memory-map among the root
// properties of an FDT of which only a prefix is given. When the strings
// block lies past the prefix, the root's only 8-byte property (compatible
// "kho-v4" has 7 bytes) is the map.
func memoryMapFromFDTPrefix(b []byte) (uint64, error) {
	props, err := fdt.PrefixRootProps(b)
	for _, p := range props {
		if len(p.Value) == 8 && (p.Name == kho.PropMemoryMap || !p.NameKnown) {
			return binary.LittleEndian.Uint64(p.Value), nil
		}
	}
	if err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("root has no %s (%d bytes: %x)", kho.PropMemoryMap, len(b), b)
}

// snapshotRadix walks the outgoing radix tree through /dev/mem and returns
// its pages in dump format, and the number of preserved blocks.
func snapshotRadix() ([]byte, int, error) {
	rootPA, err := outgoingMemoryMapPA()
	if err != nil {
		return nil, 0, err
	}
	mem, err := openDevMem()
	if err != nil {
		return nil, 0, err
	}
	defer mem.f.Close()
	mm, err := kho.ReadRadix(mem, rootPA)
	if err != nil {
		return nil, 0, fmt.Errorf("outgoing radix tree at %#x: %w", rootPA, err)
	}
	var buf bytes.Buffer
	for _, pa := range mm.Nodes {
		p, err := mem.page(pa)
		if err != nil {
			return nil, 0, err
		}
		fmt.Fprintln(&buf, kho.FormatDumpLine(pa, p))
	}
	return buf.Bytes(), len(mm.Blocks), nil
}

// overlay serves the snapshot's pages and reads everything else from
// /dev/mem.
type overlay struct {
	snap *kho.PageStore
	mem  *devMem
	used map[uint64]bool // snapshot pages the decode read
}

// Range implements kho.Memory: all of physical memory.
func (o *overlay) Range() physmem.Range { return o.mem.Range() }

func (o *overlay) Bytes(pa, n uint64) ([]byte, error) {
	page := pa &^ (physmem.PageSize - 1)
	if o.snap.Page(page) != nil && pa-page+n <= physmem.PageSize {
		o.used[page] = true
		return o.snap.Bytes(pa, n)
	}
	return o.mem.Bytes(pa, n)
}

// loadSnapshot reads stage 1's radix snapshot from the initramfs.
func loadSnapshot() (*kho.PageStore, error) {
	d, err := kho.ReadDumpFile("/" + radixPath)
	if errors.Is(err, os.ErrNotExist) {
		return kho.NewPageStore(), nil
	}
	if err != nil {
		return nil, err
	}
	return d.Pages, nil
}

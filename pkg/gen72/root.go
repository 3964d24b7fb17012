package gen72

import (
	"fmt"

	"github.com/kho-sim/kho-sim/pkg/fdt"
	"github.com/kho-sim/kho-sim/pkg/kho"
)

// ABI strings and names of Linux 7.2 (include/linux/kho/abi/).
const (
	// KHOCompatible is KHO_FDT_COMPATIBLE. The header comment of
	// kexec_handover.h still says "kho-v3"; the code and the bytes say v4.
	KHOCompatible = "kho-v4"
	// MemoryMapProp is KHO_FDT_MEMORY_MAP_PROP_NAME: u64 PA of the radix root.
	MemoryMapProp = "preserved-memory-map"
	// DataProp is KHO_SUB_TREE_PROP_NAME: u64 PA of a child's blob.
	DataProp = "preserved-data"
	// SizeProp is KHO_SUB_TREE_SIZE_PROP_NAME: u64 size of a child's blob.
	SizeProp = "blob-size"
	// LUOName is LUO_KHO_ENTRY_NAME, the child holding struct luo_ser.
	LUOName = "LUO"
	// MetadataName is KHO_METADATA_NODE_NAME.
	MetadataName = "kexec-metadata"
)

// MaxRootSize bounds the root FDT; the kernel builds it in one page and
// tells the next kernel fdt_size = PAGE_SIZE.
const MaxRootSize = 16 * PageSize

// MaxBlobSize bounds a child's blob-size: the largest allocation
// kho_alloc_preserve makes (order MAX_PAGE_ORDER = 10, 4 MiB).
const MaxBlobSize = PageSize << 10

// Setup is kho.Setup; the dump format lives in pkg/kho.
type Setup = kho.Setup

// Dump is kho.Dump.
type Dump = kho.Dump

// PageStore is kho.PageStore.
type PageStore = kho.PageStore

// Root is the KHO root FDT.
type Root struct {
	PA          uint64 // where the FDT lies
	TotalSize   uint64 // its header's totalsize
	MemoryMapPA uint64 // root of the radix tree
	// Subtrees in FDT order: kho_add_subtree inserts each new child before
	// the others, so the newest comes first.
	Subtrees []Subtree
}

// Subtree is one child of the root: a subsystem's blob.
type Subtree struct {
	Name string
	PA   uint64 // preserved-data
	Size uint64 // blob-size
}

// Subtree returns the child called name, or nil.
func (r *Root) Subtree(name string) *Subtree {
	for i := range r.Subtrees {
		if r.Subtrees[i].Name == name {
			return &r.Subtrees[i]
		}
	}
	return nil
}

// ReadRoot reads and checks the root FDT of size bytes at pa (size is the
// setup_data's fdt_size; 0 means one page). The FDT must parse strictly,
// carry exactly compatible = "kho-v4" and an 8-byte preserved-memory-map,
// and every child must have 8-byte preserved-data and blob-size, the size
// between 1 and MaxBlobSize.
func ReadRoot(mem Memory, pa, size uint64) (*Root, error) {
	if size == 0 {
		size = PageSize
	}
	if err := checkPage("KHO root FDT", pa); err != nil {
		return nil, err
	}
	if size > MaxRootSize {
		return nil, fmt.Errorf("KHO root FDT at %#x: size %d over %d: %w", pa, size, MaxRootSize, ErrBadSize)
	}
	blob, err := read(mem, "KHO root FDT", pa, size)
	if err != nil {
		return nil, err
	}
	tree, err := fdt.Parse(blob)
	if err != nil {
		return nil, fmt.Errorf("KHO root FDT at %#x: %w", pa, err)
	}
	total, err := fdt.TotalSize(blob)
	if err != nil {
		return nil, fmt.Errorf("KHO root FDT at %#x: %w", pa, err)
	}
	root := tree.Root
	compat, err := root.String("compatible")
	if err != nil {
		return nil, fmt.Errorf("KHO root FDT at %#x: %w: %w", pa, ErrBadCompatible, err)
	}
	if compat != KHOCompatible {
		return nil, fmt.Errorf("KHO root FDT at %#x: compatible %q, want %q: %w", pa, compat, KHOCompatible, ErrBadCompatible)
	}
	mapPA, err := root.U64(MemoryMapProp)
	if err != nil {
		return nil, fmt.Errorf("KHO root FDT at %#x: %w: %w", pa, ErrMissing, err)
	}
	r := &Root{PA: pa, TotalSize: uint64(total), MemoryMapPA: mapPA}
	for _, c := range root.Children {
		data, err := c.U64(DataProp)
		if err != nil {
			return nil, fmt.Errorf("KHO root FDT child %q: %w: %w", c.Name, ErrMissing, err)
		}
		sz, err := c.U64(SizeProp)
		if err != nil {
			return nil, fmt.Errorf("KHO root FDT child %q: %w: %w", c.Name, ErrMissing, err)
		}
		if sz == 0 || sz > MaxBlobSize {
			return nil, fmt.Errorf("KHO root FDT child %q: blob-size %d, want 1..%d: %w", c.Name, sz, MaxBlobSize, ErrBadSize)
		}
		r.Subtrees = append(r.Subtrees, Subtree{Name: c.Name, PA: data, Size: sz})
	}
	return r, nil
}

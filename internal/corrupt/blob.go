package corrupt

import (
	"encoding/binary"
	"fmt"

	"github.com/kho-sim/kho-sim/pkg/fdt"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// FDT header field offsets and struct block tokens (DTSpec 5.2, 5.4) of
// the fields the damage kinds edit; fdt.ParseLayout says where nodes and
// properties lie.
const (
	fdtHeaderSize  = 40
	hMagic         = 0
	hTotalSize     = 4
	hOffStruct     = 8
	hSizeStruct    = 36
	tokenBeginNode = 1
	tokenEndNode   = 2
	tokenNop       = 4
)

var be = binary.BigEndian

// blob is an FDT in the region, parsed, with the byte offsets of its nodes
// and properties.
type blob struct {
	what  string // "KHO root FDT", for descriptions
	pa    uint64
	raw   []byte // aliases the region; only read
	tree  *fdt.Tree
	nodes []nodeSpan
	props []propSpan
}

// nodeSpan is a node's tokens, FDT_BEGIN_NODE through its FDT_END_NODE.
type nodeSpan struct {
	path       string
	begin, end int
}

// propSpan locates one FDT_PROP: its token and its value.
type propSpan struct {
	node, name string
	tok        int
	value      int
	size       int
}

// readBlob reads and strictly parses the FDT at pa, sized by its own header,
// with the offsets of its nodes and properties.
func readBlob(r *physmem.Region, pa uint64, what string) (*blob, error) {
	hdr, err := r.Bytes(pa, fdtHeaderSize)
	if err != nil {
		return nil, fmt.Errorf("%s at %#x: %w", what, pa, err)
	}
	size, err := fdt.TotalSize(hdr)
	if err != nil {
		return nil, fmt.Errorf("%s at %#x: %w", what, pa, err)
	}
	raw, err := r.Bytes(pa, uint64(size))
	if err != nil {
		return nil, fmt.Errorf("%s at %#x: totalsize %d: %w", what, pa, size, err)
	}
	tree, lay, err := fdt.ParseLayout(raw)
	if err != nil {
		return nil, fmt.Errorf("%s at %#x: %w", what, pa, err)
	}
	b := &blob{what: what, pa: pa, raw: raw, tree: tree}
	for _, n := range lay.Nodes {
		b.nodes = append(b.nodes, nodeSpan{path: n.Path, begin: n.Begin, end: n.End})
	}
	for _, p := range lay.Props {
		b.props = append(b.props, propSpan{node: p.Node, name: p.Name, tok: p.Token, value: p.Value, size: p.Size})
	}
	return b, nil
}

func joinPath(parent, name string) string {
	if parent == "/" {
		return "/" + name
	}
	return parent + "/" + name
}

// propPath names a property the way dtc does: /node/prop, /prop at the root.
func propPath(node, name string) string { return joinPath(node, name) }

// node finds a node by absolute path.
func (b *blob) node(path string) (nodeSpan, error) {
	for _, n := range b.nodes {
		if n.path == path {
			return n, nil
		}
	}
	return nodeSpan{}, fmt.Errorf("%s has no node %s: %w", b.what, path, ErrNotApplicable)
}

// prop finds a property of the node at path.
func (b *blob) prop(path, name string) (propSpan, error) {
	for _, p := range b.props {
		if p.node == path && p.name == name {
			return p, nil
		}
	}
	return propSpan{}, fmt.Errorf("%s has no property %s: %w", b.what, propPath(path, name), ErrNotApplicable)
}

// u64 reads an 8-byte little-endian property, as KHO and LUO store them.
func (b *blob) u64(path, name string) (uint64, error) {
	p, err := b.prop(path, name)
	if err != nil {
		return 0, err
	}
	if p.size != 8 {
		return 0, fmt.Errorf("%s %s is %d bytes, not a u64: %w", b.what, propPath(path, name), p.size, ErrNotApplicable)
	}
	return binary.LittleEndian.Uint64(b.raw[p.value:]), nil
}

// at is the physical address of a byte offset in the blob.
func (b *blob) at(off int) uint64 { return b.pa + uint64(off) }

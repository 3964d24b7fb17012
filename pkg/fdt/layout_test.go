package fdt

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// TestParseLayout: every node and property of each test tree is where
// ParseLayout says: a node's span runs from its FDT_BEGIN_NODE through its
// FDT_END_NODE, a property's token is FDT_PROP with the value's length, and
// the bytes at its value are the parsed value.
func TestParseLayout(t *testing.T) {
	for name, tree := range testTrees() {
		t.Run(name, func(t *testing.T) {
			blob, err := build(tree, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			got, lay, err := ParseLayout(blob)
			if err != nil {
				t.Fatal(err)
			}
			be := binary.BigEndian
			nodes, props := 0, 0
			var visit func(path string, n *Node)
			visit = func(path string, n *Node) {
				if nodes >= len(lay.Nodes) || lay.Nodes[nodes].Path != path {
					t.Fatalf("node %d: layout %+v, want path %s", nodes, lay.Nodes, path)
				}
				s := lay.Nodes[nodes]
				if be.Uint32(blob[s.Begin:]) != tokenBeginNode || be.Uint32(blob[s.End-4:]) != tokenEndNode {
					t.Errorf("node %s: span [%#x, %#x) is not FDT_BEGIN_NODE..FDT_END_NODE", path, s.Begin, s.End)
				}
				nodes++
				for _, p := range n.Props {
					ps := lay.Props[props]
					props++
					if ps.Node != path || ps.Name != p.Name || be.Uint32(blob[ps.Token:]) != tokenProp || int(be.Uint32(blob[ps.Token+4:])) != ps.Size {
						t.Errorf("property %s %s: span %+v", path, p.Name, ps)
					}
					if v := blob[ps.Value : ps.Value+ps.Size]; !bytes.Equal(v, p.Value) {
						t.Errorf("property %s %s: value at %#x is % x, parsed % x", path, p.Name, ps.Value, v, p.Value)
					}
				}
				for _, c := range n.Children {
					visit(joinPath(path, c.Name), c)
				}
			}
			visit("/", got.Root)
			if nodes != len(lay.Nodes) || props != len(lay.Props) {
				t.Errorf("layout has %d nodes %d properties, the tree %d %d", len(lay.Nodes), len(lay.Props), nodes, props)
			}
		})
	}
}

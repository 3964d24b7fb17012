package fdt

import (
	"bytes"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, fails with a nil tree and a
// *ParseError, and that whatever it accepts can be walked, formatted and
// rebuilt into an equal tree.
func FuzzParse(f *testing.F) {
	for _, tree := range testTrees() {
		blob, err := Encode(tree)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(blob)
	}
	// dtc lays blobs out differently (reservation map at 40, version 16).
	if dts, _ := filepath.Glob("testdata/*.dts"); len(dts) > 0 {
		for _, args := range [][]string{nil, {"-V", "16"}} {
			out, err := exec.Command("dtc", append(append([]string{"-q", "-I", "dts", "-O", "dtb"}, args...), dts[0])...).Output()
			if err == nil {
				f.Add(out)
			}
		}
	}
	f.Add([]byte{0xd0, 0x0d, 0xfe, 0xed})
	f.Fuzz(func(t *testing.T, blob []byte) {
		tree, err := Parse(blob)
		if err != nil {
			var pe *ParseError
			if tree != nil || !errors.As(err, &pe) {
				t.Fatalf("Parse = %v, %v; want nil tree and *ParseError", tree, err)
			}
			return
		}
		if n, err := TotalSize(blob); err != nil || n > len(blob) {
			t.Fatalf("Parse accepted a blob TotalSize rejects: %d, %v", n, err)
		}
		_, lay, err := ParseLayout(blob)
		if err != nil {
			t.Fatalf("ParseLayout rejects what Parse accepts: %v", err)
		}
		for _, p := range lay.Props {
			if p.Token < 0 || p.Value+p.Size > len(blob) {
				t.Fatalf("property span %+v outside the %d-byte blob", p, len(blob))
			}
		}
		for _, n := range lay.Nodes {
			if n.Begin < 0 || n.End > len(blob) || n.End <= n.Begin {
				t.Fatalf("node span %+v outside the %d-byte blob", n, len(blob))
			}
		}
		if err := Format(io.Discard, tree); err != nil {
			t.Fatal(err)
		}
		var walk func(path string, n *Node)
		walk = func(path string, n *Node) {
			if tree.Lookup(path) != n {
				t.Fatalf("Lookup(%q) does not find the node", path)
			}
			for _, p := range n.Props {
				if v, ok := n.Prop(p.Name); !ok || !bytes.Equal(v, p.Value) {
					t.Fatalf("%s: Prop(%q) does not find the property", path, p.Name)
				}
				n.U64(p.Name)
				n.Strings(p.Name)
			}
			n.IsCompatible("luo-v1")
			for _, c := range n.Children {
				walk(strings.TrimSuffix(path, "/")+"/"+c.Name, c)
			}
		}
		walk("/", tree.Root)
		again, err := Encode(tree)
		if err != nil {
			t.Fatalf("Encode of a parsed tree: %v", err)
		}
		tree2, err := Parse(again)
		if err != nil {
			t.Fatalf("Parse of the re-encoded tree: %v", err)
		}
		if d := diffTrees(tree2, tree); d != "" {
			t.Fatalf("re-encoded tree differs: %s", d)
		}
	})
}

package fdt

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// python is Debian's interpreter, the one python3-libfdt is installed for.
const python = "/usr/bin/python3"

func node(name string, props []Property, children ...*Node) *Node {
	return &Node{Name: name, Props: props, Children: children}
}

func str(name, v string) Property { return Property{name, append([]byte(v), 0)} }
func u64(name string, v uint64) Property {
	return Property{name, binary.LittleEndian.AppendUint64(nil, v)}
}
func raw(name string, v ...byte) Property { return Property{name, v} }

// luoTree has the shape of the kernel's LUO FDT.
func luoTree() *Tree {
	return &Tree{Root: node("", []Property{str("compatible", "luo-v1"), u64("liveupdate-number", 3)},
		node("luo-session", []Property{str("compatible", "luo-session-v2"), u64("luo-session-header", 0x1234000)}),
		node("luo-flb", []Property{str("compatible", "luo-flb-v1"), u64("luo-flb-header", 0x5678000)}),
	)}
}

// testTrees covers the layouts Builder must reproduce: string dedup including
// suffixes, padding of names and values, reservations, nesting, empty values.
func testTrees() map[string]*Tree {
	deep := node("leaf", []Property{raw("depth", 9)})
	for i := 8; i >= 1; i-- {
		deep = node(fmt.Sprintf("level%d", i), []Property{raw("depth", byte(i))}, deep)
	}
	many := node("", []Property{str("compatible", "many"), {"#address-cells", []byte{0, 0, 0, 1}}})
	for i := range 100 {
		many.Children = append(many.Children, node(fmt.Sprintf("dev@%x", i),
			[]Property{{"reg", binary.BigEndian.AppendUint32(nil, uint32(i))}, str("status", "okay")}))
	}
	return map[string]*Tree{
		"root only": {Root: node("", nil)},
		"luo":       luoTree(),
		"kho root": {Root: node("", []Property{str("compatible", "kho-v1"), u64("preserved-memory-map", 0)},
			node("LUO", []Property{u64("fdt", 0x100000)}),
			node("memblock", []Property{u64("fdt", 0x200000)}))},
		"string dedup": {Root: node("", []Property{
			str("compatible", "a"), str("ible", "b"), str("le", "c"), str("e", "d"), str("patible", "e"),
			raw("empty"), raw("one", 1), raw("two", 1, 2), raw("three", 1, 2, 3), raw("four", 1, 2, 3, 4),
			raw("five", 1, 2, 3, 4, 5), raw("nine", 1, 2, 3, 4, 5, 6, 7, 8, 9)},
			node("abc", []Property{str("compatible", "x"), raw("e")}),
			node("abcd", []Property{str("le", "y"), str("newname", "z")}),
			node("abcde", []Property{str("compatible", "w"), str("wname", "v")}))},
		"reservations": {Reserved: []Reservation{{0x1000, 0x2000}, {0xffff_ffff_0000, 0x10}},
			Root: node("", []Property{str("model", "r")})},
		"deep":  {Root: node("", nil, deep)},
		"many":  {Root: many},
		"types": {Root: node("", []Property{str("s", "hello"), raw("list", 'a', 0, 'b', 'c', 0), raw("tabs", '\t', '"', '\\', 0)})},
	}
}

// requireTool skips the test when cmd is missing, or fails it when the
// environment demands the tools (KHO_SIM_TOOLS=required, set in CI).
func requireTool(t *testing.T, cmd string, args ...string) {
	t.Helper()
	if err := exec.Command(cmd, args...).Run(); err != nil {
		msg := fmt.Sprintf("%s %s unavailable: %v", cmd, strings.Join(args, " "), err)
		if os.Getenv("KHO_SIM_TOOLS") == "required" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

func requireLibfdt(t *testing.T) { requireTool(t, python, "-c", "import libfdt") }
func requireDtc(t *testing.T)    { requireTool(t, "dtc", "--version") }

type specNode struct {
	Name     string      `json:"name"`
	Props    [][2]string `json:"props"`
	Children []specNode  `json:"children"`
}

func toSpec(n *Node) specNode {
	s := specNode{Name: n.Name, Props: [][2]string{}, Children: []specNode{}}
	for _, p := range n.Props {
		s.Props = append(s.Props, [2]string{p.Name, hex.EncodeToString(p.Value)})
	}
	for _, c := range n.Children {
		s.Children = append(s.Children, toSpec(c))
	}
	return s
}

// libfdtBuild builds t with libfdt's sequential-write API; nil means NOSPACE.
func libfdtBuild(t *testing.T, tree *Tree, capacity int) []byte {
	t.Helper()
	reserved := [][2]uint64{}
	for _, r := range tree.Reserved {
		reserved = append(reserved, [2]uint64{r.Address, r.Size})
	}
	in, err := json.Marshal(map[string]any{"capacity": capacity, "reserved": reserved, "root": toSpec(tree.Root)})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, "testdata/libfdt_sw.py")
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("libfdt_sw.py: %v: %s", err, stderr.Bytes())
	}
	if s := strings.TrimSpace(string(out)); s == "NOSPACE" {
		return nil
	} else if out, err = hex.DecodeString(s); err != nil {
		t.Fatalf("libfdt_sw.py output: %v", err)
	}
	return out
}

// build feeds tree to a Builder of the given capacity.
func build(tree *Tree, capacity int) ([]byte, error) {
	return feed(NewBuilder(capacity), tree).Finish()
}

// feed makes b's calls for tree's reservations and nodes, in order.
func feed(b *Builder, tree *Tree) *Builder {
	for _, r := range tree.Reserved {
		b.AddReservation(r.Address, r.Size)
	}
	var walk func(n *Node)
	walk = func(n *Node) {
		b.BeginNode(n.Name)
		for _, p := range n.Props {
			b.Property(p.Name, p.Value)
		}
		for _, c := range n.Children {
			walk(c)
		}
		b.EndNode()
	}
	walk(tree.Root)
	return b
}

// diffTrees describes the first difference between a and b, "" if equal.
// Version is not compared; an empty value equals a nil one.
func diffTrees(a, b *Tree) string {
	if a.BootCPUID != b.BootCPUID {
		return fmt.Sprintf("boot cpuid %d != %d", a.BootCPUID, b.BootCPUID)
	}
	if fmt.Sprint(a.Reserved) != fmt.Sprint(b.Reserved) {
		return fmt.Sprintf("reservations %v != %v", a.Reserved, b.Reserved)
	}
	return diffNodes("/", a.Root, b.Root)
}

func diffNodes(path string, a, b *Node) string {
	if a.Name != b.Name || len(a.Props) != len(b.Props) || len(a.Children) != len(b.Children) {
		return fmt.Sprintf("%s: node %q (%d props, %d children) != %q (%d props, %d children)",
			path, a.Name, len(a.Props), len(a.Children), b.Name, len(b.Props), len(b.Children))
	}
	for i, p := range a.Props {
		if q := b.Props[i]; p.Name != q.Name || !bytes.Equal(p.Value, q.Value) {
			return fmt.Sprintf("%s: property %q=%x != %q=%x", path, p.Name, p.Value, q.Name, q.Value)
		}
	}
	for i, c := range a.Children {
		if d := diffNodes(path+c.Name+"/", c, b.Children[i]); d != "" {
			return d
		}
	}
	return ""
}

package fdt

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// editOp is one call of an edit session: "add" PATH NAME, "set" PATH NAME
// HEX, "del" PATH, or "inplace" PATH NAME HEX (fdt_getprop_w and a write).
type editOp []string

// editCase is a tree built sequentially into a buffer of capacity bytes,
// then edited in sessions, each fdt_open_into, its ops, fdt_pack.
type editCase struct {
	capacity int
	root     *Node
	sessions [][]editOp
}

func le64(v uint64) string { return hex.EncodeToString(binary.LittleEndian.AppendUint64(nil, v)) }

func khoRoot(compat string, memMap uint64) *Node {
	return node("", []Property{str("compatible", compat), u64("preserved-memory-map", memMap)})
}

// addBlob is kho_add_subtree of Linux 7.2: a child, its preserved-data,
// then its blob-size.
func addBlob(name string, pa, size uint64) []editOp {
	return []editOp{{"add", "/", name}, {"set", "/" + name, "preserved-data", le64(pa)}, {"set", "/" + name, "blob-size", le64(size)}}
}

func editCases() map[string]editCase {
	return map[string]editCase{
		"kho-v4 root as Linux 7.2 builds it": {4096, khoRoot("kho-v4", 0x163000), [][]editOp{
			addBlob("kexec-metadata", 0x1f3000, 0x49),
			addBlob("LUO", 0x3ab000, 0x20),
		}},
		"kho-v1 root: add, remove, add again, memory map in place": {4096, khoRoot("kho-v1", 0), [][]editOp{
			{{"add", "/", "LUO"}, {"set", "/LUO", "fdt", le64(0x10001000)}},
			{{"add", "/", "kho-sim"}, {"set", "/kho-sim", "fdt", le64(0x10002000)}},
			{{"del", "/LUO"}},
			{{"add", "/", "LUO"}, {"set", "/LUO", "fdt", le64(0x10003000)}},
			{{"inplace", "/", "preserved-memory-map", le64(0x10004000)}},
		}},
		"resize, odd lengths, nested delete": {512, node("", []Property{str("compatible", "x")},
			node("a", []Property{raw("v", 1, 2, 3)}, node("deep", []Property{raw("w", 9)})),
			node("b", nil)), [][]editOp{
			{{"set", "/a", "v", "0102030405060708090a"}, {"set", "/b", "odd", "aabbcc"}},
			{{"set", "/a", "v", "ff"}, {"del", "/a"}},
			{{"set", "/b", "size", "01"}, {"set", "/b", "blob-size", "02"}, {"set", "/", "ible", "03"}},
		}},
		"a unit address matches the bare name": {512, node("", nil, node("foo@1", nil)), [][]editOp{
			{{"add", "/", "bar"}, {"add", "/", "foo"}},
		}},
		"no space in a small buffer": {256, khoRoot("kho-v4", 1), [][]editOp{
			addBlob("one", 1, 1), addBlob("two", 2, 2), addBlob("three", 3, 3),
		}},
		"the root can be deleted": {512, node("", nil, node("a", nil)), [][]editOp{{{"del", "/"}}}},
	}
}

// libfdtEdit runs testdata/libfdt_rw.py on c.
func libfdtEdit(t *testing.T, c editCase) string {
	t.Helper()
	in, err := json.Marshal(map[string]any{"capacity": c.capacity, "root": toSpec(c.root), "sessions": c.sessions})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, "testdata/libfdt_rw.py")
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("libfdt_rw.py: %v: %s", err, stderr.Bytes())
	}
	return strings.TrimSpace(string(out))
}

// libfdtErrName names an Editor error as fdt_strerror names libfdt's.
func libfdtErrName(err error) string {
	switch {
	case errors.Is(err, ErrExists):
		return "FDT_ERR_EXISTS"
	case errors.Is(err, ErrNoSpace):
		return "FDT_ERR_NOSPACE"
	case errors.Is(err, ErrNotFound):
		return "FDT_ERR_NOTFOUND"
	}
	return err.Error()
}

// pathOffset is fdt_path_offset for absolute paths without aliases.
func (e *Editor) pathOffset(path string) (int, error) {
	off := 0
	for _, name := range strings.Split(strings.Trim(path, "/"), "/") {
		if name == "" {
			continue
		}
		var err error
		if off, err = e.Subnode(off, name); err != nil {
			return 0, err
		}
	}
	return off, nil
}

// goEdit does what libfdt_rw.py does, with Builder.FinishInto and Editor.
func goEdit(t *testing.T, c editCase) string {
	t.Helper()
	buf := make([]byte, c.capacity)
	if err := feed(NewBuilder(c.capacity), &Tree{Root: c.root}).FinishInto(buf); err != nil {
		t.Fatal(err)
	}
	for si, session := range c.sessions {
		e, err := OpenInto(buf)
		if err != nil {
			t.Fatalf("session %d: %v", si, err)
		}
		for oi, op := range session {
			off, err := e.pathOffset(op[1])
			if err == nil {
				switch op[0] {
				case "add":
					_, err = e.AddSubnode(off, op[2])
				case "set", "inplace":
					v, _ := hex.DecodeString(op[3])
					if op[0] == "set" {
						err = e.SetProp(off, op[2], v)
					} else {
						var old []byte
						if old, err = e.Prop(off, op[2]); err == nil {
							copy(old, v)
						}
					}
				case "del":
					err = e.DelNode(off)
				}
			}
			if err != nil {
				return fmt.Sprintf("ERR %d %d %s", si, oi, libfdtErrName(err))
			}
		}
		if _, err := e.Pack(); err != nil {
			t.Fatalf("session %d: pack: %v", si, err)
		}
	}
	return hex.EncodeToString(buf)
}

// TestEditorMatchesLibfdt runs the same builds and edits through libfdt
// and Editor and demands the same buffer, byte for byte, or the same
// failing call.
func TestEditorMatchesLibfdt(t *testing.T) {
	requireLibfdt(t)
	for name, c := range editCases() {
		t.Run(name, func(t *testing.T) {
			want := libfdtEdit(t, c)
			got := goEdit(t, c)
			if got != want {
				t.Errorf("Editor:\n%s\nlibfdt:\n%s", got, want)
			}
		})
	}
}

// TestEditorOutcomes pins what the cases above do, so that a libfdt
// without the edits (or without python) still tests something.
func TestEditorOutcomes(t *testing.T) {
	cases := editCases()
	for name, want := range map[string]string{
		"a unit address matches the bare name": "ERR 0 1 FDT_ERR_EXISTS",
		"no space in a small buffer":           "ERR 1 2 FDT_ERR_NOSPACE",
	} {
		if got := goEdit(t, cases[name]); got != want {
			t.Errorf("%s: %s, want %s", name, got, want)
		}
	}

	// The 7.2 root: children newest first, blob-size before
	// preserved-data, strings in the order the edits added them, the
	// reservation map packed to 40 and the sequential writer's strings
	// left at the page's end.
	out, _ := hex.DecodeString(goEdit(t, cases["kho-v4 root as Linux 7.2 builds it"]))
	tree, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range tree.Root.Children {
		names = append(names, c.Name)
		if c.Props[0].Name != "blob-size" || c.Props[1].Name != "preserved-data" {
			t.Errorf("%s: properties %v", c.Name, c.Props)
		}
	}
	if fmt.Sprint(names) != "[LUO kexec-metadata]" {
		t.Errorf("children %v, want [LUO kexec-metadata]", names)
	}
	h := func(off int) uint32 { return binary.BigEndian.Uint32(out[off:]) }
	strs := out[h(hOffStrings) : h(hOffStrings)+h(hSizeStrings)]
	if h(hOffRsvmap) != 40 || string(strs) != "preserved-memory-map\x00compatible\x00preserved-data\x00blob-size\x00" {
		t.Errorf("rsvmap at %d, strings %q", h(hOffRsvmap), strs)
	}
	if tail := out[len(out)-32:]; string(tail) != "preserved-memory-map\x00compatible\x00" {
		t.Errorf("page tail %q, want the sequential writer's strings", tail)
	}
}

// TestEditorRejectsBadBuffers feeds OpenInto and the edits buffers no
// editor should trust: each call fails with an error.
func TestEditorRejectsBadBuffers(t *testing.T) {
	good := make([]byte, 256)
	b := NewBuilder(256)
	b.BeginNode("")
	b.PropertyString("compatible", "x")
	b.BeginNode("child")
	b.EndNode()
	b.EndNode()
	if err := b.FinishInto(good); err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(b []byte)) []byte {
		c := bytes.Clone(good)
		f(c)
		return c
	}
	be := binary.BigEndian
	for _, tt := range []struct {
		name string
		buf  []byte
	}{
		{"short", good[:20]},
		{"bad magic", mutate(func(b []byte) { b[0] = 0 })},
		{"version 16", mutate(func(b []byte) { be.PutUint32(b[hVersion:], 16) })},
		{"totalsize past the buffer", mutate(func(b []byte) { be.PutUint32(b[hTotalSize:], 1<<20) })},
		{"struct before the reservation map", mutate(func(b []byte) { be.PutUint32(b[hOffStruct:], 8) })},
		{"strings inside the struct block", mutate(func(b []byte) { be.PutUint32(b[hOffStrings:], be.Uint32(b[hOffStruct:])+4) })},
		{"struct size huge", mutate(func(b []byte) { be.PutUint32(b[hSizeStruct:], 0xfffffff0) })},
		{"reservation map without end", mutate(func(b []byte) {
			for i := 48; i < len(b); i++ {
				b[i] = 0xff
			}
		})},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, err := OpenInto(tt.buf)
			if err == nil {
				// Open may pass on a header that looks right; the
				// edits must then fail instead.
				_, err = e.AddSubnode(0, "n")
				if err == nil {
					err = e.SetProp(0, "p", []byte{1})
				}
			}
			if err == nil {
				t.Fatalf("no error")
			}
			if !errors.Is(err, ErrBadLayout) {
				t.Errorf("%v, want ErrBadLayout", err)
			}
		})
	}

	// A corrupt tag inside an opened tree: the edits fail, no panic.
	e, err := OpenInto(mutate(func(b []byte) { be.PutUint32(b[be.Uint32(b[hOffStruct:])+8:], 0x77) }))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.AddSubnode(0, "n"); !errors.Is(err, ErrBadLayout) {
		t.Errorf("AddSubnode over a bad tag: %v", err)
	}
	if err := e.DelNode(4); !errors.Is(err, ErrBadLayout) {
		t.Errorf("DelNode at a non-node offset: %v", err)
	}
	if _, err := e.Prop(-4, "p"); !errors.Is(err, ErrBadLayout) {
		t.Errorf("Prop at a negative offset: %v", err)
	}
}

// FuzzEditor applies edits chosen by the input to a small tree and checks
// the packed result against a model of what each edit means: the tree
// parses, and its nodes and properties are the model's, in its order. The
// input is also handed to the editor as a buffer of its own, which must
// fail cleanly or stay a tree that parses, never panic.
func FuzzEditor(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte{0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 0x40, 0x41})
	// A real tree, for the hostile-buffer half to mutate.
	if blob, err := build(luoTree(), 0); err == nil {
		f.Add(blob)
	}
	f.Fuzz(func(t *testing.T, ops []byte) {
		editHostile(t, ops)
		names := []string{"a", "b", "a@1", "kexec-metadata"}
		props := []string{"blob-size", "size", "preserved-data", "compatible"}
		buf := make([]byte, 1024)
		b := NewBuilder(len(buf))
		b.BeginNode("")
		b.PropertyString("compatible", "kho-v4")
		b.EndNode()
		if err := b.FinishInto(buf); err != nil {
			t.Fatal(err)
		}
		model := node("", []Property{str("compatible", "kho-v4")})
		for i := 0; i+1 < len(ops) && i < 64; i += 2 {
			e, err := OpenInto(buf)
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			op, arg := ops[i]%4, int(ops[i+1])
			name := names[arg%len(names)]
			target := model
			off := 0
			if arg&0x40 != 0 && len(model.Children) > 0 {
				target = model.Children[0]
				if off, err = e.Subnode(0, target.Name); err != nil {
					t.Fatalf("model child %q: %v", target.Name, err)
				}
			}
			switch op {
			case 0: // add a child
				_, err = e.AddSubnode(off, name)
				if exists := modelChild(target, name) >= 0; exists != errors.Is(err, ErrExists) {
					t.Fatalf("add %q: %v, model exists %v", name, err, exists)
				}
				if err == nil {
					target.Children = append([]*Node{{Name: name}}, target.Children...)
				}
			case 1, 2: // set a property: new ones go first
				p := props[arg%len(props)]
				v := bytes.Repeat([]byte{byte(arg)}, arg%13)
				if err = e.SetProp(off, p, v); err == nil {
					if j := modelProp(target, p); j >= 0 {
						target.Props[j].Value = v
					} else {
						target.Props = append([]Property{{p, v}}, target.Props...)
					}
				}
			case 3: // delete a child
				if j := modelChild(target, name); j >= 0 {
					c, err := e.Subnode(off, name)
					if err != nil {
						t.Fatalf("find %q: %v", name, err)
					}
					if err := e.DelNode(c); err != nil {
						t.Fatalf("del %q: %v", name, err)
					}
					target.Children = append(target.Children[:j], target.Children[j+1:]...)
				}
			}
			if err != nil && !errors.Is(err, ErrNoSpace) && !errors.Is(err, ErrExists) {
				t.Fatalf("op %d: %v", op, err)
			}
			packed, err := e.Pack()
			if err != nil {
				t.Fatalf("pack: %v", err)
			}
			got, err := Parse(packed)
			if err != nil {
				t.Fatalf("packed tree does not parse: %v", err)
			}
			if d := diffNodes("/", got.Root, model); d != "" {
				t.Fatalf("after op %d: %s", i/2, d)
			}
		}
	})
}

// editHostile opens a copy of raw (padded to a page) and tries every edit
// on it: errors are fine, a panic is not, and whatever an edit that
// succeeded leaves behind must still open.
func editHostile(t *testing.T, raw []byte) {
	buf := make([]byte, max(len(raw), 4096))
	copy(buf, raw)
	e, err := OpenInto(buf)
	if err != nil {
		return
	}
	ok := false
	if off, err := e.AddSubnode(0, "n"); err == nil {
		ok = e.SetProp(off, "p", raw) == nil || ok
	}
	if subs, err := e.Subnodes(0); err == nil && len(subs) > 0 {
		ok = e.DelNode(subs[0]) == nil || ok
	}
	if _, err := e.Prop(0, "compatible"); err == nil {
		ok = true
	}
	if _, err := e.Pack(); err != nil && ok {
		t.Fatalf("edits succeeded but the tree no longer packs: %v", err)
	}
}

// modelChild is the index of n's child that libfdt's name match finds, or -1.
func modelChild(n *Node, name string) int {
	for i, c := range n.Children {
		if nameMatches([]byte(c.Name), name) {
			return i
		}
	}
	return -1
}

func modelProp(n *Node, name string) int {
	for i, p := range n.Props {
		if p.Name == name {
			return i
		}
	}
	return -1
}

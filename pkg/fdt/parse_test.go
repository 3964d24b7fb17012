package fdt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
)

var be = binary.BigEndian

// tokens encodes struct block tokens; a string is a node name (NUL and
// padding added), []byte is appended raw.
func tokens(items ...any) []byte {
	var out []byte
	for _, it := range items {
		switch v := it.(type) {
		case int:
			out = be.AppendUint32(out, uint32(v))
		case string:
			out = appendZeros(append(append(out, v...), 0), len(v)+1)
		case []byte:
			out = append(out, v...)
		}
	}
	return out
}

// prop encodes an FDT_PROP token with a padded value.
func prop(nameoff int, value ...byte) []byte {
	return appendZeros(append(tokens(tokenProp, len(value), nameoff), value...), len(value))
}

// assemble lays out a version 17 blob as libfdt does from raw blocks; rsv
// must include the terminating entry.
func assemble(rsv, structBlk, strs []byte) []byte {
	offStruct := rsvmapOffset + len(rsv)
	offStrings := offStruct + len(structBlk)
	total := offStrings + len(strs)
	blob := make([]byte, rsvmapOffset, total)
	for i, v := range []int{Magic, total, offStruct, offStrings, rsvmapOffset, 17, 16, 0, len(strs), len(structBlk)} {
		be.PutUint32(blob[4*i:], uint32(v))
	}
	return append(append(append(blob, rsv...), structBlk...), strs...)
}

// testStrings holds "compatible" at 0 and "a" at 11; 13 is its size.
var testStrings = []byte("compatible\x00a\x00")

func withStruct(items ...any) []byte {
	return assemble(make([]byte, reserveSize), tokens(items...), testStrings)
}

// set returns a copy of blob with the 32-bit header field at off set to v.
func set(blob []byte, off int, v uint32) []byte {
	b := bytes.Clone(blob)
	be.PutUint32(b[off:], v)
	return b
}

func field(blob []byte, off int) uint32 { return be.Uint32(blob[off:]) }

func TestParseHostile(t *testing.T) {
	tree := luoTree()
	tree.Reserved = []Reservation{{0x1000, 0x1000}}
	tree.Root.Children[0].Props = append(tree.Root.Children[0].Props, Property{"zeros", make([]byte, 24)})
	base, err := Encode(tree)
	if err != nil {
		t.Fatal(err)
	}
	total, offStruct, sizeStruct := len(base), int(field(base, hOffStruct)), int(field(base, hSizeStruct))
	offStrings := int(field(base, hOffStrings))
	zeros := offStruct + bytes.Index(base[offStruct:], make([]byte, 24))

	deep := []any{tokenBeginNode, ""}
	for range MaxDepth {
		deep = append(deep, tokenBeginNode, "d")
	}
	wide := []any{tokenBeginNode, ""}
	for i := range MaxNodes {
		wide = append(wide, tokenBeginNode, fmt.Sprint("n", i), tokenEndNode)
	}
	manyRsv := bytes.Repeat(tokens(0, 1, 0, 1), MaxReservations+1)

	tests := []struct {
		name string
		blob []byte
		want string
	}{
		{"empty", nil, "header truncated: 0 bytes"},
		{"bad magic", set(base, hMagic, 0xfeedd00d), "bad magic 0xfeedd00d"},
		{"short header", base[:30], "header truncated: 30 bytes, need 36"},
		{"v17 header cut", base[:38], "need 40"},
		{"truncated", base[:total-1], fmt.Sprintf("totalsize %d exceeds the %d bytes", total, total-1)},
		{"totalsize below header", set(base, hTotalSize, 20), "totalsize 20 out of range"},
		{"totalsize over 2GiB", set(base, hTotalSize, 0x80000000), "totalsize 2147483648 out of range"},
		{"version 15", set(base, hVersion, 15), "version 15 unsupported"},
		{"last_comp 18", set(set(base, hVersion, 18), hLastComp, 18), "last_comp_version 18 > 17"},
		{"last_comp above version", set(set(base, hVersion, 16), hLastComp, 17), "exceeds version 16"},
		{"struct beyond totalsize", set(base, hOffStruct, uint32(total+3)&^3), fmt.Sprintf("struct block [%#x, +%#x) exceeds totalsize", (total+3)&^3, sizeStruct)},
		{"struct size overflow", set(base, hSizeStruct, 0xfffffffc), "exceeds totalsize"},
		{"strings beyond totalsize", set(base, hOffStrings, uint32(total+1)), "strings block ["},
		{"strings size overflow", set(base, hSizeStrings, 0xffffffff), "exceeds totalsize"},
		{"struct misaligned", set(base, hOffStruct, uint32(offStruct+2)), "not 4-byte aligned"},
		{"rsvmap misaligned", set(base, hOffRsvmap, 44), "memory reservation map offset 0x2c not 8-byte aligned"},
		{"rsvmap in header", set(base, hOffRsvmap, 32), "overlaps the header"},
		{"struct in header", set(base, hOffStruct, 0), "struct block offset 0x0 overlaps the header"},
		{"struct size unaligned", set(base, hSizeStruct, uint32(sizeStruct-2)), "not a multiple of 4"},
		{"strings overlap struct", set(base, hSizeStruct, uint32(sizeStruct+4)), "strings block overlaps struct block"},
		{"rsvmap unterminated", set(base, hOffRsvmap, uint32(total-16)&^7), "not terminated within totalsize"},
		{"rsvmap overlaps struct", set(base, hOffRsvmap, uint32(zeros+7)&^7), "memory reservation map overlaps struct block"},
		{"rsvmap overlaps strings", set(set(base, hOffStrings, rsvmapOffset), hSizeStrings, 16), "memory reservation map overlaps strings block"},
		{"too many reservations", assemble(append(manyRsv, make([]byte, 16)...), tokens(tokenBeginNode, "", tokenEndNode, tokenEnd), nil), "more than 1024 memory reservations"},
		{"strings cut before NUL", set(base, hSizeStrings, uint32(total-offStrings-1)), "property name not NUL-terminated within the strings block"},
		{"no FDT_END", withStruct(tokenBeginNode, "", tokenEndNode), "struct block ends without FDT_END"},
		{"only NOPs", withStruct(tokenNop, tokenNop), "struct block ends without FDT_END"},
		{"unknown token", withStruct(tokenBeginNode, "", 7), "unknown token 0x7"},
		{"root named", withStruct(tokenBeginNode, "x", tokenEndNode, tokenEnd), `root node named "x"`},
		{"second root", withStruct(tokenBeginNode, "", tokenEndNode, tokenBeginNode, "", tokenEndNode, tokenEnd), "second root node"},
		{"FDT_END first", withStruct(tokenEnd), "FDT_END before the root node"},
		{"unbalanced", withStruct(tokenBeginNode, "", tokenBeginNode, "a", tokenEndNode, tokenEnd), "FDT_END with 1 nodes still open"},
		{"extra END_NODE", withStruct(tokenBeginNode, "", tokenEndNode, tokenEndNode, tokenEnd), "FDT_END_NODE without an open node"},
		{"data after FDT_END", withStruct(tokenBeginNode, "", tokenEndNode, tokenEnd, tokenNop), "4 bytes after FDT_END"},
		{"name without NUL", withStruct(tokenBeginNode, "", tokenBeginNode, []byte("abcdefgh")), "node name not NUL-terminated within the struct block"},
		{"bad node name", withStruct(tokenBeginNode, "", tokenBeginNode, "a b", tokenEndNode, tokenEndNode, tokenEnd), `name "a b" has invalid character ' '`},
		{"name padding", withStruct(tokenBeginNode, "", tokenBeginNode, []byte("ab\x00\x01"), tokenEndNode, tokenEndNode, tokenEnd), "node name padding byte is 0x01"},
		{"prop outside node", withStruct(prop(0), tokenEnd), "property outside any node"},
		{"prop after root", withStruct(tokenBeginNode, "", tokenEndNode, prop(0), tokenEnd), "property outside any node"},
		{"prop after subnode", withStruct(tokenBeginNode, "", tokenBeginNode, "a", tokenEndNode, prop(0), tokenEndNode, tokenEnd), "property after a subnode"},
		{"prop header cut", withStruct(tokenBeginNode, "", tokenProp, 0), "property header runs past the struct block"},
		{"prop len overflow", withStruct(tokenBeginNode, "", tokenProp, 0xffffffff, 0, tokenEndNode, tokenEnd), "property length 4294967295 runs past the struct block"},
		{"prop len past end", withStruct(tokenBeginNode, "", tokenProp, 9, 0, tokenEndNode, tokenEnd), "property length 9 runs past"},
		{"nameoff at end", withStruct(tokenBeginNode, "", prop(13), tokenEndNode, tokenEnd), "nameoff 13 outside the strings block of 13 bytes"},
		{"nameoff huge", withStruct(tokenBeginNode, "", prop(-1), tokenEndNode, tokenEnd), "nameoff 4294967295 outside"},
		{"empty prop name", withStruct(tokenBeginNode, "", prop(10), tokenEndNode, tokenEnd), "property empty name"},
		{"duplicate prop", withStruct(tokenBeginNode, "", prop(0), prop(4), prop(0), tokenEndNode, tokenEnd), `duplicate property "compatible"`},
		{"duplicate node", withStruct(tokenBeginNode, "", tokenBeginNode, "a", tokenEndNode, tokenBeginNode, "a", tokenEndNode, tokenEndNode, tokenEnd), `duplicate node "a"`},
		{"depth bomb", withStruct(deep...), "nodes nested deeper than 64"},
		{"node count", withStruct(wide...), "more than 65536 nodes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tree, err := Parse(tc.blob)
			var pe *ParseError
			if !errors.As(err, &pe) || tree != nil {
				t.Fatalf("Parse = %v, %v; want nil tree and *ParseError", tree, err)
			}
			if !strings.Contains(pe.Reason, tc.want) {
				t.Fatalf("reason %q, want it to contain %q", pe.Reason, tc.want)
			}
			if pe.Offset < 0 || pe.Offset > len(tc.blob) {
				t.Errorf("offset %#x outside the blob of %d bytes", pe.Offset, len(tc.blob))
			}
		})
	}
}

// TestParseAccepts covers valid blobs beyond those Builder writes.
func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name string
		blob []byte
		want *Tree
	}{
		{"NOPs everywhere", withStruct(tokenNop, tokenBeginNode, "", tokenNop, prop(11, 1), tokenNop,
			tokenBeginNode, "a@1", tokenNop, tokenEndNode, tokenNop, tokenEndNode, tokenNop, tokenEnd),
			&Tree{Root: node("", []Property{raw("a", 1)}, node("a@1", nil))}},
		{"name is a suffix", withStruct(tokenBeginNode, "", prop(6, 'x', 0), tokenEndNode, tokenEnd),
			&Tree{Root: node("", []Property{str("ible", "x")})}},
		{"stale value padding, as fdt_setprop leaves it", withStruct(tokenBeginNode, "", tokenProp, 1, 0, []byte("x\x00\x02\x00"), tokenEndNode, tokenEnd),
			&Tree{Root: node("", []Property{raw("compatible", 'x')})}},
		{"version 16", set(set(mustEncode(luoTree()), hVersion, 16), hSizeStruct, 0xdeadbeef), luoTree()},
		{"max depth", withStruct(append(append([]any{tokenBeginNode, ""}, repeat(MaxDepth-1, tokenBeginNode, "d")...),
			append(repeat(MaxDepth, tokenEndNode), tokenEnd)...)...), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tree, err := Parse(tc.blob)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want != nil {
				if d := diffTrees(tree, tc.want); d != "" {
					t.Fatal(d)
				}
			}
		})
	}
}

func mustEncode(tree *Tree) []byte {
	blob, err := Encode(tree)
	if err != nil {
		panic(err)
	}
	return blob
}

func repeat(n int, items ...any) []any {
	var out []any
	for range n {
		out = append(out, items...)
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	for name, tree := range testTrees() {
		t.Run(name, func(t *testing.T) {
			blob, err := build(tree, 0)
			if err != nil {
				t.Fatal(err)
			}
			// Only totalsize bytes count; the tree must not alias the blob.
			got, err := Parse(append(bytes.Clone(blob), 0xff, 0xff, 0xff))
			if err != nil {
				t.Fatal(err)
			}
			if got.Version != Version {
				t.Errorf("version %d", got.Version)
			}
			if d := diffTrees(got, tree); d != "" {
				t.Fatal(d)
			}
			if n, err := TotalSize(blob[:headerSize]); err != nil || n != len(blob) {
				t.Errorf("TotalSize = %d, %v; want %d", n, err, len(blob))
			}
		})
	}
}

func TestParseCopies(t *testing.T) {
	blob, err := Encode(luoTree())
	if err != nil {
		t.Fatal(err)
	}
	tree, err := Parse(blob)
	if err != nil {
		t.Fatal(err)
	}
	for i := range blob {
		blob[i] = 0xaa
	}
	if d := diffTrees(tree, luoTree()); d != "" {
		t.Fatalf("tree changed with the blob: %s", d)
	}
}

func TestTotalSize(t *testing.T) {
	blob, err := Encode(luoTree())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		header []byte
		want   int
		reason string
	}{
		{"full blob", blob, len(blob), ""},
		{"header only", blob[:headerSize], len(blob), ""},
		{"short", blob[:39], 0, "header truncated"},
		{"bad magic", set(blob, hMagic, 0), 0, "bad magic"},
		{"strings beyond", set(blob[:headerSize], hTotalSize, uint32(len(blob)-1)), 0, "strings block"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, err := TotalSize(tc.header)
			if tc.reason == "" {
				if err != nil || n != tc.want {
					t.Fatalf("TotalSize = %d, %v; want %d", n, err, tc.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("TotalSize = %d, %v; want error containing %q", n, err, tc.reason)
			}
		})
	}
}

func TestNodeAccessors(t *testing.T) {
	n := node("", []Property{
		u64("u64", 0x1122334455667788), raw("short", 1, 2, 3), {"u32", []byte{1, 0, 0, 0}},
		str("s", "luo-v1"), raw("list", 'a', 0, 'b', 0), raw("unterminated", 'a'), raw("ctrl", 'a', 1, 0),
		raw("compatible", 'x', 0, 'y', 0, 'z'),
	}, node("a@1", nil, node("b", nil)))
	tree := &Tree{Root: n}

	if v, err := n.U64("u64"); err != nil || v != 0x1122334455667788 {
		t.Errorf("U64 = %#x, %v", v, err)
	}
	if v, err := n.U32("u32"); err != nil || v != 1 {
		t.Errorf("U32 = %#x, %v", v, err)
	}
	if v, err := n.String("s"); err != nil || v != "luo-v1" {
		t.Errorf("String = %q, %v", v, err)
	}
	if v, err := n.Strings("list"); err != nil || fmt.Sprint(v) != "[a b]" {
		t.Errorf("Strings = %q, %v", v, err)
	}
	errTests := []struct {
		name string
		call func() error
		is   error
		want string
	}{
		{"U64 missing", func() error { _, err := n.U64("nope"); return err }, ErrNotFound, `"nope"`},
		{"U64 short", func() error { _, err := n.U64("short"); return err }, ErrBadValue, `property "short" is 3 bytes, want 8`},
		{"U32 of u64", func() error { _, err := n.U32("u64"); return err }, ErrBadValue, "is 8 bytes, want 4"},
		{"String of list", func() error { _, err := n.String("list"); return err }, ErrBadValue, "holds 2 strings"},
		{"String unterminated", func() error { _, err := n.String("unterminated"); return err }, ErrBadValue, "not NUL-terminated"},
		{"String control char", func() error { _, err := n.String("ctrl"); return err }, ErrBadValue, "unprintable byte 0x01 at 1"},
		{"Strings empty", func() error { _, err := n.Strings("short"); return err }, ErrBadValue, "not NUL-terminated"},
	}
	for _, tc := range errTests {
		if err := tc.call(); !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %v containing %q", tc.name, err, tc.is, tc.want)
		}
	}

	compat := map[string]bool{"x": true, "y": true, "z": false, "": false, "x\x00y": false}
	for c, want := range compat {
		if got := n.IsCompatible(c); got != want {
			t.Errorf("IsCompatible(%q) = %v", c, got)
		}
	}
	lookups := map[string]*Node{"/": n, "/a@1": n.Children[0], "/a@1/b": n.Children[0].Children[0],
		"/a": nil, "a@1": nil, "": nil, "/a@1/": nil, "//a@1": nil, "/a@1/b/c": nil}
	for path, want := range lookups {
		if got := tree.Lookup(path); got != want {
			t.Errorf("Lookup(%q) = %v, want %v", path, got, want)
		}
	}
	var none *Node
	if none.Child("a") != nil || (*Tree)(nil).Lookup("/") != nil || none.IsCompatible("x") {
		t.Error("nil receivers must find nothing")
	}
}

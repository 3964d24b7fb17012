package fdt

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestBuilderMatchesLibfdt(t *testing.T) {
	requireLibfdt(t)
	for name, tree := range testTrees() {
		t.Run(name, func(t *testing.T) {
			want := libfdtBuild(t, tree, 0)
			got, err := build(tree, 0)
			if err != nil {
				t.Fatalf("build: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("blob differs from libfdt's:\ngot  %x\nwant %x", got, want)
			}
		})
	}
}

// TestBuilderCapacity checks that a capacity fails exactly when libfdt's
// fdt_create(buf, capacity) runs out of space for the same calls.
func TestBuilderCapacity(t *testing.T) {
	requireLibfdt(t)
	tree := luoTree()
	full, err := build(tree, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, capacity := range []int{len(full) + 100, len(full), len(full) - 1, len(full) - 40, 64, 63, 48, 47} {
		want := libfdtBuild(t, tree, capacity)
		got, err := build(tree, capacity)
		switch {
		case want == nil && !errors.Is(err, ErrNoSpace):
			t.Errorf("capacity %d: libfdt runs out of space, Builder returns %x, %v", capacity, got, err)
		case want != nil && !bytes.Equal(got, want):
			t.Errorf("capacity %d: got %x, %v; libfdt %x", capacity, got, err, want)
		}
	}
}

func TestBuilderErrors(t *testing.T) {
	tests := []struct {
		name  string
		calls func(b *Builder) error
		is    error
		want  string
	}{
		{"no root", func(b *Builder) error { return nil }, ErrBadState, "without a root"},
		{"unbalanced", func(b *Builder) error { b.BeginNode(""); return b.BeginNode("a") }, ErrBadState, "2 nodes open"},
		{"extra end", func(b *Builder) error { b.BeginNode(""); b.EndNode(); return b.EndNode() }, ErrBadState, "without an open node"},
		{"second root", func(b *Builder) error { b.BeginNode(""); b.EndNode(); return b.BeginNode("") }, ErrBadState, "after the root node ended"},
		{"named root", func(b *Builder) error { return b.BeginNode("x") }, ErrBadName, `root node named "x"`},
		{"empty child name", func(b *Builder) error { b.BeginNode(""); return b.BeginNode("") }, ErrBadName, "empty name"},
		{"slash in name", func(b *Builder) error { b.BeginNode(""); return b.BeginNode("a/b") }, ErrBadName, `invalid character '/'`},
		{"NUL in prop name", func(b *Builder) error { b.BeginNode(""); return b.Property("a\x00b", nil) }, ErrBadName, "invalid character"},
		{"@ in prop name", func(b *Builder) error { b.BeginNode(""); return b.Property("a@1", nil) }, ErrBadName, "invalid character '@'"},
		{"NUL in string", func(b *Builder) error { b.BeginNode(""); return b.PropertyString("s", "a\x00") }, ErrBadValue, "contains NUL"},
		{"duplicate prop", func(b *Builder) error { b.BeginNode(""); b.PropertyU32("a", 1); return b.PropertyU32("a", 2) }, ErrBadName, `duplicate property "a"`},
		{"duplicate node", func(b *Builder) error {
			b.BeginNode("")
			b.BeginNode("n")
			b.EndNode()
			return b.BeginNode("n")
		}, ErrBadName, `duplicate node "n"`},
		{"prop outside node", func(b *Builder) error { return b.PropertyU64("a", 1) }, ErrBadState, "outside any node"},
		{"prop after subnode", func(b *Builder) error {
			b.BeginNode("")
			b.BeginNode("n")
			b.EndNode()
			return b.PropertyU64("a", 1)
		}, ErrBadState, "after a subnode"},
		{"reservation after root", func(b *Builder) error { b.BeginNode(""); return b.AddReservation(1, 2) }, ErrBadState, "after the root node began"},
		{"too deep", func(b *Builder) error {
			b.BeginNode("")
			for range MaxDepth {
				b.BeginNode("d")
			}
			return nil
		}, ErrBadState, "deeper than 64"},
		{"no space", func(b *Builder) error { return b.BeginNode("") }, ErrNoSpace, "capacity 60"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			capacity := 0
			if tc.is == ErrNoSpace {
				capacity = 60
			}
			b := NewBuilder(capacity)
			err := tc.calls(b)
			if err == nil {
				_, err = b.Finish()
			}
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %v containing %q", err, tc.is, tc.want)
			}
			// Sticky: every later call reports the first error.
			if err2 := b.BeginNode(""); err2 != err {
				t.Errorf("BeginNode after error: %v, want %v", err2, err)
			}
			if _, err2 := b.Finish(); err2 != err {
				t.Errorf("Finish after error: %v, want %v", err2, err)
			}
		})
	}
}

func TestBuilderFinishOnce(t *testing.T) {
	b := NewBuilder(0)
	b.BeginNode("")
	b.EndNode()
	if _, err := b.Finish(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Finish(); !errors.Is(err, ErrBadState) {
		t.Fatalf("second Finish: %v, want ErrBadState", err)
	}
}

func TestEncode(t *testing.T) {
	tree := luoTree()
	tree.BootCPUID = 7
	tree.Reserved = []Reservation{{1, 2}}
	blob, err := Encode(tree)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(blob)
	if err != nil {
		t.Fatal(err)
	}
	if d := diffTrees(got, tree); d != "" {
		t.Fatal(d)
	}
	cyclic := node("", nil, node("a", nil))
	cyclic.Children[0].Children = []*Node{cyclic.Children[0]}
	if _, err := Encode(&Tree{Root: cyclic}); !errors.Is(err, ErrBadState) {
		t.Fatalf("cyclic tree: %v, want ErrBadState (depth)", err)
	}
}

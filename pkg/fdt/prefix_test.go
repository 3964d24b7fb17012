package fdt

import (
	"bytes"
	"errors"
	"testing"
)

// Every prefix of a blob gives the root's properties that lie wholly in it,
// in order, named when the name's string is in it too; a prefix that holds
// all of them gives exactly the root's properties.
func TestPrefixRootProps(t *testing.T) {
	for name, tree := range testTrees() {
		blob, err := Encode(tree)
		if err != nil {
			t.Fatal(err)
		}
		full, err := PrefixRootProps(blob)
		if err != nil {
			t.Fatalf("%s: whole blob: %v", name, err)
		}
		if len(full) != len(tree.Root.Props) {
			t.Fatalf("%s: %d root properties, want %d", name, len(full), len(tree.Root.Props))
		}
		for i, p := range full {
			want := tree.Root.Props[i]
			if !p.NameKnown || p.Name != want.Name || !bytes.Equal(p.Value, want.Value) {
				t.Fatalf("%s: property %d = %q %x (named %v), want %q %x", name, i, p.Name, p.Value, p.NameKnown, want.Name, want.Value)
			}
		}
		for n := range len(blob) {
			got, err := PrefixRootProps(blob[:n])
			if err != nil {
				var pe *ParseError
				if !errors.As(err, &pe) {
					t.Fatalf("%s: prefix %d: %v, want a *ParseError", name, n, err)
				}
			}
			if len(got) > len(full) {
				t.Fatalf("%s: prefix %d: %d properties, more than the blob's %d", name, n, len(got), len(full))
			}
			for i, p := range got {
				if !bytes.Equal(p.Value, full[i].Value) || p.NameKnown && p.Name != full[i].Name {
					t.Fatalf("%s: prefix %d: property %d = %q %x, want %q %x", name, n, i, p.Name, p.Value, full[i].Name, full[i].Value)
				}
			}
		}
	}
}

// FuzzPrefixRootProps: any bytes give properties or a *ParseError, never a
// panic, and every value lies inside the input.
func FuzzPrefixRootProps(f *testing.F) {
	for _, tree := range testTrees() {
		blob, err := Encode(tree)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(blob)
		f.Add(blob[:len(blob)/2])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		props, err := PrefixRootProps(b)
		var pe *ParseError
		if err != nil && !errors.As(err, &pe) {
			t.Fatalf("error %v is not a *ParseError", err)
		}
		if len(props) > maxPrefixProps {
			t.Fatalf("%d properties, more than %d", len(props), maxPrefixProps)
		}
		for _, p := range props {
			if len(p.Value) > len(b) {
				t.Fatalf("value of %d bytes from %d bytes of input", len(p.Value), len(b))
			}
		}
	})
}

package fdt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
)

// Child returns the child named exactly name (unit address included), or nil.
func (n *Node) Child(name string) *Node {
	if n == nil {
		return nil
	}
	for _, c := range n.Children {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Prop returns the value of the property called name; it aliases the tree.
func (n *Node) Prop(name string) ([]byte, bool) {
	if n == nil {
		return nil, false
	}
	for _, p := range n.Props {
		if p.Name == name {
			return p.Value, true
		}
	}
	return nil, false
}

func (n *Node) fixed(name string, size int) ([]byte, error) {
	v, ok := n.Prop(name)
	if !ok {
		return nil, fmt.Errorf("fdt: property %q: %w", name, ErrNotFound)
	}
	if len(v) != size {
		return nil, fmt.Errorf("fdt: property %q is %d bytes, want %d: %w", name, len(v), size, ErrBadValue)
	}
	return v, nil
}

// U64 returns an 8-byte little-endian property, as KHO stores a u64.
func (n *Node) U64(name string) (uint64, error) {
	v, err := n.fixed(name, 8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(v), nil
}

// U32 returns a 4-byte little-endian property (see PropertyU32).
func (n *Node) U32(name string) (uint32, error) {
	v, err := n.fixed(name, 4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(v), nil
}

// String returns a property holding exactly one NUL-terminated string of
// printable ASCII.
func (n *Node) String(name string) (string, error) {
	list, err := n.Strings(name)
	if err != nil {
		return "", err
	}
	if len(list) != 1 {
		return "", fmt.Errorf("fdt: property %q holds %d strings, want 1: %w", name, len(list), ErrBadValue)
	}
	return list[0], nil
}

// Strings returns a property holding a list of NUL-terminated strings of
// printable ASCII.
func (n *Node) Strings(name string) ([]string, error) {
	v, ok := n.Prop(name)
	if !ok {
		return nil, fmt.Errorf("fdt: property %q: %w", name, ErrNotFound)
	}
	if len(v) == 0 || v[len(v)-1] != 0 {
		return nil, fmt.Errorf("fdt: property %q is not NUL-terminated: %w", name, ErrBadValue)
	}
	for i, c := range v {
		if c != 0 && (c < 0x20 || c > 0x7e) {
			return nil, fmt.Errorf("fdt: property %q has unprintable byte %#02x at %d: %w", name, c, i, ErrBadValue)
		}
	}
	return strings.Split(string(v[:len(v)-1]), "\x00"), nil
}

// IsCompatible reports whether any entry of the node's "compatible"
// stringlist equals compat, as libfdt's fdt_node_check_compatible does; an
// unterminated last entry never matches.
func (n *Node) IsCompatible(compat string) bool {
	v, _ := n.Prop("compatible")
	for len(v) > 0 {
		end := bytes.IndexByte(v, 0)
		if end < 0 {
			return false
		}
		if string(v[:end]) == compat {
			return true
		}
		v = v[end+1:]
	}
	return false
}

// Lookup returns the node at an absolute path such as "/" or "/a/b@1", or nil.
func (t *Tree) Lookup(path string) *Node {
	if t == nil || !strings.HasPrefix(path, "/") {
		return nil
	}
	n := t.Root
	if path == "/" {
		return n
	}
	for _, name := range strings.Split(path[1:], "/") {
		if n = n.Child(name); n == nil {
			return nil
		}
	}
	return n
}

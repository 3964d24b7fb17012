package fdt

import (
	"encoding/binary"
	"strings"
)

// PrefixProp is a root property read by PrefixRootProps.
type PrefixProp struct {
	// Name is the property's name; empty, with NameKnown false, when the
	// strings block lies past the prefix.
	Name      string
	NameKnown bool
	Value     []byte
}

// maxPrefixProps bounds the root properties PrefixRootProps returns.
const maxPrefixProps = 1 << 10

// PrefixRootProps returns the root node's properties from a prefix of an
// FDT: a blob cut short of its totalsize, such as debugfs's kho/out/fdt,
// which KHO sizes before its children are added, so Parse and NewLookup
// rightly refuse it. The root's properties come first in the struct
// block; the walk stops at the root's first subnode, the end of the
// prefix (with an error) or maxPrefixProps. Values alias b.
func PrefixRootProps(b []byte) ([]PrefixProp, error) {
	be := binary.BigEndian
	if len(b) < headerSize || be.Uint32(b[hMagic:]) != Magic {
		return nil, &ParseError{0, "prefix: no FDT header"}
	}
	offStruct, offStrings := int64(be.Uint32(b[hOffStruct:])), int64(be.Uint32(b[hOffStrings:]))
	off := offStruct
	u32 := func() (uint32, bool) {
		if off < 0 || off+4 > int64(len(b)) {
			return 0, false
		}
		v := be.Uint32(b[off:])
		off += 4
		return v, true
	}
	if tok, ok := u32(); !ok || tok != tokenBeginNode {
		return nil, &ParseError{int(offStruct), "prefix: no root node"}
	}
	off += 4 // the root's empty name, padded
	var props []PrefixProp
	for len(props) < maxPrefixProps {
		tok, ok := u32()
		switch {
		case !ok:
			return props, &ParseError{len(b), "prefix ends among the root's properties"}
		case tok == tokenNop:
			continue
		case tok != tokenProp:
			return props, nil // a subnode or the root's end: its properties are over
		}
		n, ok1 := u32()
		nameOff, ok2 := u32()
		if !ok1 || !ok2 || off+int64(n) > int64(len(b)) {
			return props, &ParseError{int(off - 12), "prefix cuts a root property"}
		}
		p := PrefixProp{Value: b[off : off+int64(n)]}
		off += (int64(n) + 3) &^ 3
		if at := offStrings + int64(nameOff); at >= 0 && at < int64(len(b)) {
			if name, _, found := strings.Cut(string(b[at:]), "\x00"); found {
				p.Name, p.NameKnown = name, true
			}
		}
		props = append(props, p)
	}
	return props, nil
}

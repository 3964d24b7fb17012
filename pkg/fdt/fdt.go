package fdt

import (
	"errors"
	"fmt"
)

// Header constants of the formats this package writes and reads.
const (
	Magic           = 0xd00dfeed
	Version         = 17 // version written by Builder
	LastCompVersion = 16 // last_comp_version written by Builder
	MinReadVersion  = 16 // oldest version Parse accepts
)

// Limits that bound the work Parse (and, symmetrically, Builder) will do.
const (
	MaxDepth        = 64      // nesting levels, the root counting as one
	MaxNodes        = 1 << 16 // nodes in a tree
	MaxProperties   = 1 << 18 // properties in a tree
	MaxReservations = 1 << 10 // memory reservation entries
)

const (
	tokenBeginNode = 0x1
	tokenEndNode   = 0x2
	tokenProp      = 0x3
	tokenNop       = 0x4
	tokenEnd       = 0x9

	headerSize    = 40 // version 17 header
	headerSizeV16 = 36 // version 16 has no size_dt_struct
	reserveSize   = 16 // one reservation map entry
	// libfdt's fdt_create places the reservation map after the header rounded
	// up to the entry size, so there are 8 zero bytes between them.
	rsvmapOffset = (headerSize + reserveSize - 1) / reserveSize * reserveSize
)

// Builder errors wrap one of these.
var (
	ErrNoSpace  = errors.New("fdt: no space left within capacity")
	ErrBadState = errors.New("fdt: call out of sequence")
	ErrBadName  = errors.New("fdt: invalid name")
)

// Node accessor errors wrap one of these.
var (
	ErrNotFound = errors.New("fdt: property not found")
	ErrBadValue = errors.New("fdt: property value malformed")
)

// ParseError reports why a blob was rejected and where.
type ParseError struct {
	Offset int // byte offset in the blob
	Reason string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("fdt: invalid blob at offset %#x: %s", e.Offset, e.Reason)
}

func parseErr(off int, format string, args ...any) error {
	return &ParseError{Offset: off, Reason: fmt.Sprintf(format, args...)}
}

// Tree is a parsed device tree.
type Tree struct {
	Root      *Node
	BootCPUID uint32
	Reserved  []Reservation
	Version   uint32
}

// Reservation is one memory reservation map entry.
type Reservation struct {
	Address, Size uint64
}

// Node is a device tree node. Name is the unit name, "" for the root.
type Node struct {
	Name     string
	Props    []Property
	Children []*Node
}

// Property is a named value.
type Property struct {
	Name  string
	Value []byte
}

// validName reports why name is not a DTSpec node or property name ("" if it is).
// Builder and Parse apply the same rule so everything Parse accepts can be rebuilt.
func validName(name string, node bool) string {
	if name == "" {
		return "empty name"
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z',
			c == ',', c == '.', c == '_', c == '+', c == '-':
		case node && c == '@':
		case !node && (c == '?' || c == '#'):
		default:
			return fmt.Sprintf("name %q has invalid character %q", name, c)
		}
	}
	return ""
}

// nameSet detects duplicate names; a slice serves the few names most nodes have.
type nameSet struct {
	list []string
	m    map[string]struct{}
}

// add records name and reports false if it was already present.
func (s *nameSet) add(name string) bool {
	if s.m != nil {
		if _, ok := s.m[name]; ok {
			return false
		}
		s.m[name] = struct{}{}
		return true
	}
	for _, n := range s.list {
		if n == name {
			return false
		}
	}
	s.list = append(s.list, name)
	if len(s.list) > 16 {
		s.m = make(map[string]struct{}, 2*len(s.list))
		for _, n := range s.list {
			s.m[n] = struct{}{}
		}
		s.list = nil
	}
	return true
}

package flb

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/kho-sim/kho-sim/pkg/kernel"
)

// FLB page layout, include/linux/kho/abi/luo.h (all fields packed, native
// little endian):
//
//	struct luo_flb_header_ser { u64 pgcnt; u64 count; };
//	struct luo_flb_ser { char name[48]; u64 data; u64 count; };
const (
	HeaderSize = 16 // sizeof(struct luo_flb_header_ser)
	EntrySize  = 64 // sizeof(struct luo_flb_ser)
	NameLen    = 48 // LIVEUPDATE_FLB_COMPAT_LENGTH
	PageCount  = 1  // LUO_FLB_PGCNT, written to pgcnt
	// Max is LUO_FLB_MAX = 63: the entries after the header in
	// LUO_FLB_PGCNT pages.
	Max = (PageCount*kernel.PageSize - HeaderSize) / EntrySize
)

// Entry is one decoded struct luo_flb_ser.
type Entry struct {
	Name  [NameLen]byte
	Data  uint64
	Count uint64
}

// NameString returns the name up to its first NUL and whether the 48 bytes
// hold a NUL at all (the kernel never checks this).
func (e Entry) NameString() (name string, terminated bool) {
	if i := bytes.IndexByte(e.Name[:], 0); i >= 0 {
		return string(e.Name[:i]), true
	}
	return string(e.Name[:]), false
}

// ReadHeader decodes struct luo_flb_header_ser at the start of page.
func ReadHeader(page []byte) (pgcnt, count uint64, err error) {
	if len(page) < HeaderSize {
		return 0, 0, fmt.Errorf("FLB header: page is %d bytes, need %d", len(page), HeaderSize)
	}
	return binary.LittleEndian.Uint64(page[0:]), binary.LittleEndian.Uint64(page[8:]), nil
}

// ReadEntry decodes entry i of the page. It checks only that the entry lies
// inside page and inside the table's Max entries, not the header count.
func ReadEntry(page []byte, i int) (Entry, error) {
	if i < 0 || i >= Max {
		return Entry{}, fmt.Errorf("FLB entry %d: index outside 0..%d", i, Max-1)
	}
	off := HeaderSize + i*EntrySize
	if off+EntrySize > len(page) {
		return Entry{}, fmt.Errorf("FLB entry %d: bytes %d..%d outside a %d-byte page", i, off, off+EntrySize, len(page))
	}
	var e Entry
	copy(e.Name[:], page[off:off+NameLen])
	e.Data = binary.LittleEndian.Uint64(page[off+NameLen:])
	e.Count = binary.LittleEndian.Uint64(page[off+NameLen+8:])
	return e, nil
}

// entryOffset returns the byte offset of entry i; i may exceed Max, as it
// does when the kernel trusts a corrupt header count.
func entryOffset(i uint64) uint64 { return HeaderSize + i*EntrySize }

// cname models a kernel `const char compatible[48]` initialised from a
// string literal: the bytes up to the first NUL, and whether a NUL exists.
type cname struct {
	s          string
	terminated bool
}

// parseCompatible checks that s fits a char[48] (a longer literal does not
// compile) and returns its C view.
func parseCompatible(s string) (cname, bool) {
	if len(s) > NameLen {
		return cname{}, false
	}
	if i := bytes.IndexByte([]byte(s), 0); i >= 0 {
		return cname{s: s[:i], terminated: true}, true
	}
	return cname{s: s, terminated: len(s) < NameLen}, true
}

// equal models strcmp(a, b) == 0 between two kernel-side compatibles. An
// unterminated name runs into the bytes after its array (the FLB's private
// list pointers), which differ between two objects: it equals nothing.
func (a cname) equal(b cname) bool {
	return a.terminated && b.terminated && a.s == b.s
}

// strcmpPage models strcmp(page + off, name) == 0 where the left side comes
// from the previous kernel and may lack a NUL. Like strcmp it stops at the
// first difference or at a common NUL; a byte beyond page is not read but
// reported as ErrReadPastPage.
func strcmpPage(page []byte, off uint64, name cname) (bool, error) {
	for k := uint64(0); ; k++ {
		at := off + k
		if at >= uint64(len(page)) {
			return false, fmt.Errorf("strcmp reaches byte %d: %w", at, ErrReadPastPage)
		}
		a := page[at]
		var b byte
		switch {
		case k < uint64(len(name.s)):
			b = name.s[k]
		case name.terminated:
			b = 0
		default:
			return false, nil // past the unterminated array: modelled as differing
		}
		if a != b {
			return false, nil
		}
		if a == 0 {
			return true, nil
		}
	}
}

// strscpy models strscpy(dst, src, len(dst)): copies at most len(dst)-1
// bytes and a NUL, and leaves the rest of dst untouched (no padding).
func strscpy(dst []byte, src string) {
	n := copy(dst[:len(dst)-1], src)
	dst[n] = 0
}

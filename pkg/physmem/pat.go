package physmem

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// PATMemtypeList is where x86 debugfs lists every physical range with a
// PAT memory type reserved (arch/x86/mm/pat/memtype.c, memtype_seq_show).
const PATMemtypeList = "/sys/kernel/debug/x86/pat_memtype_list"

// Memtype is one entry of the PAT memtype list: a physical range and the
// cache mode the kernel granted it ("write-back", "uncached-minus", ...).
type Memtype struct {
	Range Range
	Mode  string
}

// ParsePATMemtypes reads the PAT memtype list and returns the entries that
// overlap rg. Each line reads "PAT: [mem 0xSTART-0xEND] MODE", END
// exclusive; the heading and anything else is skipped.
func ParsePATMemtypes(r io.Reader, rg Range) ([]Memtype, error) {
	var out []Memtype
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "PAT: [mem ")
		if !ok {
			continue
		}
		span, mode, ok := strings.Cut(rest, "] ")
		start, end, ok2 := strings.Cut(span, "-")
		if !ok || !ok2 {
			continue
		}
		s, err1 := strconv.ParseUint(start, 0, 64)
		e, err2 := strconv.ParseUint(end, 0, 64)
		if err1 != nil || err2 != nil || e <= s || !(Range{Start: s, Size: e - s}).valid() {
			continue
		}
		m := Memtype{Range: Range{Start: s, Size: e - s}, Mode: strings.TrimSpace(mode)}
		if m.Range.Overlaps(rg) {
			out = append(out, m)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("physmem: PAT memtype list: %w", err)
	}
	return out, nil
}

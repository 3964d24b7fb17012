package physmem

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/kho-sim/kho-sim/internal/readfile"
)

// IOMemEntry is one line of /proc/iomem.
type IOMemEntry struct {
	Range
	Name  string
	Depth int // nesting level: 0 for top-level entries
}

// ParseIOMem parses /proc/iomem ("start-end : name", ends inclusive, two
// spaces of indentation per nesting level). An entry ending at the last
// address of the 64-bit space loses that byte, since Range cannot hold it.
// It fails with ErrIOMemHidden when every address is zero.
func ParseIOMem(r io.Reader) ([]IOMemEntry, error) {
	var entries []IOMemEntry
	sc := bufio.NewScanner(r)
	for lineNo := 1; sc.Scan(); lineNo++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		e, err := parseIOMemLine(line)
		if err != nil {
			return nil, fmt.Errorf("physmem: iomem line %d %q: %w", lineNo, line, err)
		}
		entries = append(entries, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("physmem: read iomem: %w", err)
	}
	if iomemHidden(entries) {
		return nil, ErrIOMemHidden
	}
	return entries, nil
}

func parseIOMemLine(line string) (IOMemEntry, error) {
	body := strings.TrimLeft(line, " ")
	indent := len(line) - len(body)
	span, name, ok := strings.Cut(body, " : ")
	if !ok {
		return IOMemEntry{}, errors.New(`want "start-end : name"`)
	}
	lo, hi, ok := strings.Cut(span, "-")
	if !ok {
		return IOMemEntry{}, errors.New(`want "start-end"`)
	}
	start, err := strconv.ParseUint(lo, 16, 64)
	if err != nil {
		return IOMemEntry{}, fmt.Errorf("start: %w", err)
	}
	end, err := strconv.ParseUint(hi, 16, 64)
	if err != nil {
		return IOMemEntry{}, fmt.Errorf("end: %w", err)
	}
	if end < start {
		return IOMemEntry{}, fmt.Errorf("end %#x before start %#x", end, start)
	}
	size := end - start + 1
	if size == 0 { // the whole 64-bit space
		size--
	}
	return IOMemEntry{Range: Range{start, size}, Name: name, Depth: indent / 2}, nil
}

func iomemHidden(entries []IOMemEntry) bool {
	for _, e := range entries {
		if e.Start != 0 || e.last() != 0 {
			return false
		}
	}
	return len(entries) > 0
}

// ReadIOMem parses the memory map at path (normally /proc/iomem).
func ReadIOMem(path string) ([]IOMemEntry, error) { return readfile.Parse(path, ParseIOMem) }

// SystemRAM lists the top-level "System RAM" ranges: the RAM the running
// kernel maps. It is an error when the addresses are hidden (read without
// CAP_SYS_ADMIN).
func SystemRAM(entries []IOMemEntry) ([]Range, error) {
	if iomemHidden(entries) {
		return nil, ErrIOMemHidden
	}
	var ram []Range
	for _, e := range entries {
		if e.Depth == 0 && e.Name == "System RAM" {
			ram = append(ram, e.Range)
		}
	}
	return ram, nil
}

// CheckReserved checks that want lies wholly inside one top-level "Reserved"
// entry and overlaps no "System RAM" entry at any depth: what memmap=SIZE$ADDR
// produces. The error wraps ErrNotReserved (or ErrIOMemHidden) and says what
// to add to the kernel command line.
func CheckReserved(entries []IOMemEntry, want Range) error {
	if iomemHidden(entries) {
		return ErrIOMemHidden
	}
	fix := fmt.Sprintf("add %s to the kernel command line (quote the $ in bootloaders/QEMU -append)", MemmapArg(want))
	for _, e := range entries {
		if e.Name == "System RAM" && e.Overlaps(want) {
			return fmt.Errorf("%w: %v overlaps System RAM %v in /proc/iomem, which the kernel owns; %s",
				ErrNotReserved, want, e.Range, fix)
		}
	}
	var near []string
	for _, e := range entries {
		if e.Depth != 0 || !e.Overlaps(want) {
			continue
		}
		if e.Name == "Reserved" && e.Contains(want) {
			return nil
		}
		near = append(near, fmt.Sprintf("%v %s", e.Range, e.Name))
	}
	what := "nothing in /proc/iomem covers it"
	if len(near) > 0 {
		what = "/proc/iomem has " + strings.Join(near, ", ") + " there"
	}
	return fmt.Errorf("%w: %v is not inside one Reserved entry (%s); %s", ErrNotReserved, want, what, fix)
}

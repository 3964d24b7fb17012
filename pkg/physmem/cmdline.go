package physmem

import (
	"fmt"
	"strings"

	"github.com/kho-sim/kho-sim/internal/cmdline"
)

// MemmapFromCmdline returns the first range reserved by memmap=SIZE$ADDR on
// a kernel command line. Like the kernel, it accepts several memmap= and
// comma-separated lists (memmap=16M$0x10000000,4K$0x20000000), stops at "--"
// (what follows belongs to init) and reads double quotes as the kernel's
// next_arg does (internal/cmdline). It also accepts "\$", the form written
// in bootloader configs and shell-quoted -append strings. Other memmap
// kinds (@ RAM, # ACPI, ! persistent, exactmap, limits) are ignored. found
// is false when no reserved range is given; a malformed reserved entry is an
// error.
func MemmapFromCmdline(line string) (r Range, found bool, err error) {
	for _, p := range cmdline.Parse(line).Params {
		if !p.HasValue || p.Key() != "memmap" {
			continue
		}
		val := p.Value
		for _, entry := range strings.Split(val, ",") {
			entry = strings.ReplaceAll(entry, `\$`, "$")
			size, addr, ok := strings.Cut(entry, "$")
			if !ok {
				continue
			}
			r, err := parseRange(entry, size, addr)
			if err != nil {
				return Range{}, false, fmt.Errorf("physmem: kernel command line memmap=%s: %w", val, err)
			}
			return r, true, nil
		}
	}
	return Range{}, false, nil
}

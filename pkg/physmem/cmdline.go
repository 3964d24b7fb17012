package physmem

import (
	"fmt"
	"strings"
)

// MemmapFromCmdline returns the first range reserved by memmap=SIZE$ADDR on
// a kernel command line. Like the kernel, it accepts several memmap= and
// comma-separated lists (memmap=16M$0x10000000,4K$0x20000000), stops at "--"
// (what follows belongs to init) and honours double quotes. It also accepts
// "\$", the form written in bootloader configs and shell-quoted -append
// strings. Other memmap kinds (@ RAM, # ACPI, ! persistent, exactmap, limits)
// are ignored. found is false when no reserved range is given; a malformed
// reserved entry is an error.
func MemmapFromCmdline(cmdline string) (r Range, found bool, err error) {
	for _, arg := range cmdlineArgs(cmdline) {
		name, val, ok := strings.Cut(arg, "=")
		if !ok || name != "memmap" {
			continue
		}
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

// cmdlineArgs splits a kernel command line the way the kernel's next_arg()
// does: at white space outside double quotes, with the quotes removed.
func cmdlineArgs(cmdline string) []string {
	var args []string
	var cur []byte
	inQuote, started := false, false
	for i := 0; i <= len(cmdline); i++ {
		if i < len(cmdline) && (inQuote || strings.IndexByte(" \t\n\v\f\r", cmdline[i]) < 0) {
			if cmdline[i] == '"' {
				inQuote = !inQuote
			} else {
				cur = append(cur, cmdline[i])
			}
			started = true
			continue
		}
		if started && string(cur) == "--" {
			break // the rest belongs to init
		}
		if started {
			args = append(args, string(cur))
		}
		cur, started = cur[:0], false
	}
	return args
}

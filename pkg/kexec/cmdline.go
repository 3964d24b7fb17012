package kexec

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/kho-sim/kho-sim/internal/cmdline"
)

// RewriteCmdline returns current with every parameter named in set given
// that value and every parameter named in drop removed. A key present in
// current keeps the position of its first instance and loses the others;
// keys not present are appended, sorted, before any "--" (what follows it
// belongs to init and is copied verbatim). Everything else carries over
// unchanged and in order: memmap=16M$0x10000000, quoted values such as
// foo="a b", and repeated parameters. Words are split and keys matched as
// the kernel does (internal/cmdline: next_arg's quotes, '-' and '_' equal).
// An empty value gives a bare flag ("quiet"); a value with white space is
// double-quoted. A value holding a double quote or NUL, or a key that no
// command line word can carry, is an error. Words are joined by single
// spaces. A last word whose quote never closes runs to the end of the line
// in the kernel's eyes, so appended words go before it.
func RewriteCmdline(current string, set map[string]string, drop []string) (string, error) {
	remove := make(map[string]bool, len(set)+len(drop))
	for _, k := range drop {
		remove[cmdline.Key(k)] = true
	}
	pending := make(map[string]string, len(set))
	for _, k := range slices.Sorted(maps.Keys(set)) {
		w, ok := cmdline.Format(k, set[k])
		if !ok {
			return "", fmt.Errorf("kexec: command line parameter %q=%q: no command line word can carry it", k, set[k])
		}
		remove[cmdline.Key(k)] = true
		pending[cmdline.Key(k)] = w
	}
	line := cmdline.Parse(current)
	out := make([]string, 0, len(line.Params)+len(pending))
	for _, p := range line.Params {
		k := p.Key()
		if !remove[k] {
			out = append(out, p.Raw)
		} else if w, ok := pending[k]; ok {
			out = append(out, w)
			delete(pending, k)
		}
	}
	added := slices.Sorted(maps.Values(pending))
	if n := len(out); n > 0 && strings.Count(out[n-1], `"`)%2 == 1 {
		out = slices.Insert(out, n-1, added...)
	} else {
		out = append(out, added...)
	}
	if line.Dashes != "" {
		out = append(out, line.Dashes)
		if line.Init != "" {
			out = append(out, line.Init)
		}
	}
	return strings.Join(out, " "), nil
}

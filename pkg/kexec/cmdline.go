package kexec

import (
	"maps"
	"slices"
	"strings"
)

// RewriteCmdline returns current with every parameter named in set given
// that value and every parameter named in drop removed. A key present in
// current keeps the position of its first instance and loses the others;
// keys not present are appended, sorted, before any "--" (after it the
// kernel passes words to init, which are never touched). Everything else
// carries over unchanged and in order: memmap=16M$0x10000000, quoted values
// such as foo="a b", and repeated parameters. Keys match as the kernel
// matches them, with '-' and '_' equal. An empty value gives a bare flag
// ("quiet"); a value with white space is double-quoted (it cannot itself
// hold a double quote). Words are joined by single spaces, and a final
// unterminated quote is closed, which the kernel reads the same way.
func RewriteCmdline(current string, set map[string]string, drop []string) string {
	remove := make(map[string]bool, len(set)+len(drop))
	for _, k := range drop {
		remove[paramKey(k)] = true
	}
	pending := make(map[string]string, len(set))
	for _, k := range slices.Sorted(maps.Keys(set)) {
		if k == "" {
			continue
		}
		remove[paramKey(k)] = true
		pending[paramKey(k)] = formatParam(k, set[k])
	}
	words := cmdlineWords(current)
	end := slices.Index(words, "--")
	if end < 0 {
		end = len(words)
	}
	out := make([]string, 0, len(words)+len(pending))
	for _, w := range words[:end] {
		k := paramKey(w)
		if !remove[k] {
			out = append(out, w)
		} else if p, ok := pending[k]; ok {
			out = append(out, p)
			delete(pending, k)
		}
	}
	out = append(out, slices.Sorted(maps.Values(pending))...)
	out = append(out, words[end:]...)
	return strings.Join(out, " ")
}

// cmdlineWords splits a command line where the kernel's next_arg() does: at
// white space outside double quotes. The quotes stay in the words.
func cmdlineWords(s string) []string {
	var words []string
	start, inQuote := -1, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isSpace(c) && !inQuote {
			if start >= 0 {
				words = append(words, s[start:i])
				start = -1
			}
			continue
		}
		if start < 0 {
			start = i
		}
		if c == '"' {
			inQuote = !inQuote
		}
	}
	if inQuote {
		// The kernel reads an unterminated quote to the end of the line;
		// closing it keeps that meaning and keeps appended words apart.
		return append(words, s[start:]+`"`)
	}
	if start >= 0 {
		words = append(words, s[start:])
	}
	return words
}

// isSpace is the kernel's isspace() for the characters a command line holds.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// paramKey is the parameter name of a command line word, quotes removed and
// '-' folded to '_' as the kernel's parameq() does.
func paramKey(word string) string {
	k, _, _ := strings.Cut(strings.TrimPrefix(word, `"`), "=")
	return strings.ReplaceAll(strings.TrimSuffix(k, `"`), "-", "_")
}

func formatParam(key, value string) string {
	switch {
	case value == "":
		return key
	case strings.IndexFunc(value, func(r rune) bool { return r < 0x80 && isSpace(byte(r)) }) >= 0:
		return key + `="` + value + `"`
	}
	return key + "=" + value
}

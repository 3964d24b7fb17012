// Package cmdline reads a kernel command line as the kernel does: lib/cmdline.c
// next_arg splits it into parameters, kernel/params.c parse_args stops at the
// first bare "--" and hands what follows to init, and parameq() treats '-'
// and '_' in a name as equal.
//
// next_arg's rules, kept here byte for byte: words end at white space outside
// double quotes (isspace of lib/ctype.c: \t \n \v \f \r, space and 0xa0);
// a word starting with a quote is quoted and loses its final quote; a value
// starting with a quote loses it and the word's final quote; other quotes
// stay. So param="a b" and "param=a b" both give the value "a b". The line
// ends at a NUL, as the kernel's C string does.
package cmdline

import "strings"

// Param is one word of a command line as next_arg returns it.
type Param struct {
	// Name and Value are what the kernel sees, the quotes next_arg drops
	// dropped.
	Name, Value string
	// HasValue is false for a word without '=' ("quiet"). As in next_arg, a
	// '=' that is the word's first character does not count.
	HasValue bool
	// Raw is the word as written, quotes kept, without the white space
	// around it.
	Raw string
}

// Key is the name as parameq compares it: '-' folded to '_'.
func (p Param) Key() string { return Key(p.Name) }

// Key folds '-' to '_', so that names the kernel treats as equal are equal.
func Key(name string) string { return strings.ReplaceAll(name, "-", "_") }

// Line is a command line split as the kernel splits it.
type Line struct {
	// Params are the kernel's parameters, in order, repeats kept.
	Params []Param
	// Dashes is the word that ended them as written ("--" or `"--"`), ""
	// when the line has none.
	Dashes string
	// Init is what follows Dashes, verbatim: init's arguments.
	Init string
}

// Parse splits s into the kernel's parameters and init's arguments
// (parse_args: leading white space skipped, then next_arg until a word that
// is "--" without a value).
func Parse(s string) Line {
	var l Line
	rest := skipSpaces(cut(s))
	for rest != "" {
		var p Param
		p, rest = nextArg(rest)
		if !p.HasValue && p.Name == "--" {
			l.Dashes, l.Init = p.Raw, rest
			break
		}
		l.Params = append(l.Params, p)
	}
	return l
}

// Split returns every word of s, init's arguments included, as next_arg
// splits them (the kernel splits init's arguments with it too).
func Split(s string) []Param {
	var out []Param
	rest := skipSpaces(cut(s))
	for rest != "" {
		var p Param
		p, rest = nextArg(rest)
		out = append(out, p)
	}
	return out
}

// Lookup returns the value of the last kernel parameter whose key is key
// (a parameter given twice takes its last value) and whether there is one.
func (l Line) Lookup(key string) (value string, ok bool) {
	key = Key(key)
	for i := len(l.Params) - 1; i >= 0; i-- {
		if l.Params[i].Key() == key {
			return l.Params[i].Value, true
		}
	}
	return "", false
}

// Values returns every kernel parameter's value by key, the last instance
// winning; a word without a value maps to "".
func (l Line) Values() map[string]string {
	m := make(map[string]string, len(l.Params))
	for _, p := range l.Params {
		m[p.Key()] = p.Value
	}
	return m
}

// String joins the words by single spaces; the kernel reads the result as
// it read l.
func (l Line) String() string {
	words := make([]string, 0, len(l.Params)+2)
	for _, p := range l.Params {
		words = append(words, p.Raw)
	}
	if l.Dashes != "" {
		words = append(words, l.Dashes)
		if l.Init != "" {
			words = append(words, l.Init)
		}
	}
	return strings.Join(words, " ")
}

// Values is Parse(s).Values().
func Values(s string) map[string]string { return Parse(s).Values() }

// Format writes name=value so that next_arg gives back name and value: an
// empty value gives the bare name, a value with white space is quoted. It
// reports false for what no word can carry: a name that is empty, "--", or
// holds '=', a quote, white space or NUL; a value with a quote or NUL.
func Format(name, value string) (string, bool) {
	if name == "" || name == "--" || strings.ContainsAny(name, "=\"\x00") || hasSpace(name) ||
		strings.ContainsAny(value, "\"\x00") {
		return "", false
	}
	switch {
	case value == "":
		return name, true
	case hasSpace(value):
		return name + `="` + value + `"`, true
	}
	return name + "=" + value, true
}

// nextArg models next_arg on s, which starts with a word. It returns the
// word and the rest after the white space that follows it.
func nextArg(s string) (Param, string) {
	args, quoted := s, false
	if args[0] == '"' {
		args, quoted = args[1:], true
	}
	inQuote := quoted
	i, equals := 0, 0
	for ; i < len(args); i++ {
		c := args[i]
		if isSpace(c) && !inQuote {
			break
		}
		if equals == 0 && c == '=' {
			equals = i
		}
		if c == '"' {
			inQuote = !inQuote
		}
	}
	// end is where the word's string stops: the white space (or end) at i,
	// or i-1 where next_arg overwrote a final quote with a NUL.
	end := i
	p := Param{HasValue: equals != 0}
	if p.HasValue {
		p.Name = args[:equals]
		v := equals + 1
		if v < i && args[v] == '"' {
			v++
			if args[i-1] == '"' {
				end = i - 1
			}
		}
		if quoted && end == i && args[i-1] == '"' {
			end = i - 1
		}
		p.Value = args[v:max(v, end)]
	} else {
		if quoted && i > 0 && args[i-1] == '"' {
			end = i - 1
		}
		p.Name = args[:end]
	}
	raw := i
	if quoted {
		raw++
	}
	p.Raw = s[:raw]
	rest := s[raw:]
	if rest != "" {
		rest = rest[1:] // the white space next_arg overwrote
	}
	return p, skipSpaces(rest)
}

// isSpace is the kernel's isspace() (lib/ctype.c): 0xa0 counts, so the
// second byte of a UTF-8 "à" ends a word.
func isSpace(c byte) bool {
	return c == ' ' || (c >= '\t' && c <= '\r') || c == 0xa0
}

func hasSpace(s string) bool {
	for i := 0; i < len(s); i++ {
		if isSpace(s[i]) {
			return true
		}
	}
	return false
}

func skipSpaces(s string) string {
	for s != "" && isSpace(s[0]) {
		s = s[1:]
	}
	return s
}

// cut ends s at its first NUL, where the kernel's string ends.
func cut(s string) string {
	s, _, _ = strings.Cut(s, "\x00")
	return s
}

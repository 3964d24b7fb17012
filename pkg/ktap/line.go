package ktap

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Directive kinds that KTAP version 1 accepts after "#" in a result line.
const (
	DirSkip    = "SKIP"
	DirTodo    = "TODO"
	DirXFail   = "XFAIL"
	DirTimeout = "TIMEOUT"
	DirError   = "ERROR"
)

const (
	versionLine = "KTAP version 1"
	indentStep  = 4
	subtestTag  = "Subtest: "
	// maxLine bounds the memory spent on one line; longer lines are never KTAP.
	maxLine = 64 << 10
)

// Directive is the part of a result line after "#": Kind is one of the Dir
// constants or "" (then Reason is plain diagnostic data).
type Directive struct {
	Kind   string
	Reason string
}

// Skip returns a SKIP directive with the given reason.
func Skip(reason string) Directive { return Directive{Kind: DirSkip, Reason: reason} }

func isDirective(word string) bool {
	switch word {
	case DirSkip, DirTodo, DirXFail, DirTimeout, DirError:
		return true
	}
	return false
}

// parseDirective reads the text after '#' leniently: the keyword in any case.
func parseDirective(tail string) Directive {
	t := strings.TrimSpace(tail)
	word, rest, _ := strings.Cut(t, " ")
	if up := strings.ToUpper(word); isDirective(up) {
		return Directive{Kind: up, Reason: strings.TrimSpace(rest)}
	}
	return Directive{Reason: t}
}

type lineKind uint8

const (
	kindUnknown lineKind = iota
	kindVersion
	kindPlan
	kindResult
	kindDiag
)

// line is one input line split by the KTAP grammar.
type line struct {
	kind   lineKind
	indent int    // leading spaces
	body   string // the line without its indentation
	num    int    // version, planned count or test number
	tap    bool   // version line says "TAP", not "KTAP"
	ok     bool
	desc   string // result description, trimmed, without a TAP13 "- "
	hash   bool   // result or plan line has a '#'
	tail   string // text after the '#' of a result, plan or diagnostic line
}

// classify splits s by the grammar; anything else is kindUnknown.
func classify(s string) line {
	body := strings.TrimLeft(s, " ")
	l := line{indent: len(s) - len(body), body: body}
	if rest, ok := strings.CutPrefix(body, "#"); ok {
		l.kind, l.tail = kindDiag, rest
		return l
	}
	if rest, ok := strings.CutPrefix(body, "KTAP version "); ok {
		if l.num, ok = wholeNumber(rest); ok {
			l.kind = kindVersion
		}
		return l
	}
	if rest, ok := strings.CutPrefix(body, "TAP version "); ok {
		if l.num, ok = wholeNumber(rest); ok {
			l.kind, l.tap = kindVersion, true
		}
		return l
	}
	if rest, ok := strings.CutPrefix(body, "1.."); ok {
		n, rest, ok := leadingNumber(rest)
		if ok && (rest == "" || strings.HasPrefix(rest, " #")) {
			l.kind, l.num = kindPlan, n
			_, l.tail, l.hash = strings.Cut(rest, "#")
		}
		return l
	}
	rest, ok := strings.CutPrefix(body, "ok ")
	if l.ok = ok; !ok {
		if rest, ok = strings.CutPrefix(body, "not ok "); !ok {
			return l
		}
	}
	n, rest, ok := leadingNumber(rest)
	if !ok || (rest != "" && rest[0] != ' ') {
		return l
	}
	desc, tail, hash := strings.Cut(rest, "#")
	desc = strings.TrimSpace(desc)
	if d, ok := strings.CutPrefix(desc, "- "); ok {
		desc = strings.TrimSpace(d)
	}
	l.kind, l.num, l.desc, l.tail, l.hash = kindResult, n, desc, tail, hash
	return l
}

// leadingNumber reads the decimal number at the start of s (at most nine
// digits, so it cannot overflow) and returns what follows it.
func leadingNumber(s string) (int, string, bool) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 || i > 9 {
		return 0, s, false
	}
	n, err := strconv.Atoi(s[:i])
	return n, s[i:], err == nil
}

func wholeNumber(s string) (int, bool) {
	n, rest, ok := leadingNumber(s)
	return n, ok && rest == ""
}

// eachLine calls fn for every line of r, numbered from 1, without the "\n".
// A line longer than maxLine is passed as "" with tooLong set.
func eachLine(r io.Reader, fn func(n int, s string, tooLong bool)) error {
	br := bufio.NewReaderSize(r, maxLine)
	for n := 1; ; n++ {
		b, err := br.ReadSlice('\n')
		tooLong := errors.Is(err, bufio.ErrBufferFull)
		for errors.Is(err, bufio.ErrBufferFull) {
			b, err = br.ReadSlice('\n')
		}
		if len(b) > 0 || tooLong {
			s := ""
			if !tooLong {
				s = string(b)
			}
			fn(n, strings.TrimSuffix(s, "\n"), tooLong)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("ktap: reading line %d: %w", n, err)
		}
	}
}

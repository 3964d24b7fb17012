package ktap

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"regexp"
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
	indentStep  = 4 // spaces per nesting level, as KUnit prints them
	subtestTag  = "# Subtest: "
	maxLine     = 64 << 10 // longer lines are skipped unread: never KTAP
)

// Directive is what follows "#" in a result line: Kind is one of the Dir
// constants, or "" when Reason is plain diagnostic data.
type Directive struct{ Kind, Reason string }

// Skip returns a SKIP directive with the given reason.
func Skip(reason string) Directive { return Directive{Kind: DirSkip, Reason: reason} }

func isDirective(w string) bool {
	return w == DirSkip || w == DirTodo || w == DirXFail || w == DirTimeout || w == DirError
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

// The line grammar. Numbers have at most nine digits: they cannot overflow.
var (
	versionRE = regexp.MustCompile(`^K?TAP version ([0-9]{1,9})$`)
	planRE    = regexp.MustCompile(`^1\.\.([0-9]{1,9})(?: #(.*))?$`)
	resultRE  = regexp.MustCompile(`^(not )?ok ([0-9]{1,9})(?: ([^#]*)(?:#(.*))?)?$`)
)

type lineKind uint8

const (
	kindUnknown lineKind = iota
	kindVersion
	kindPlan
	kindResult
	kindDiag
)

// line is one input line split by the grammar.
type line struct {
	kind   lineKind
	indent int    // leading spaces
	body   string // the line without its indentation
	num    int    // version, planned count or test number
	ok     bool
	desc   string // result description, trimmed, without a TAP13 "- "
	tail   string // after the '#' of a result, plan or diagnostic line
}

func classify(s string) line {
	body := strings.TrimLeft(s, " ")
	l := line{indent: len(s) - len(body), body: body}
	if m := versionRE.FindStringSubmatch(body); m != nil {
		l.kind, l.num = kindVersion, atoi(m[1])
	} else if m := planRE.FindStringSubmatch(body); m != nil {
		l.kind, l.num, l.tail = kindPlan, atoi(m[1]), m[2]
	} else if m := resultRE.FindStringSubmatch(body); m != nil {
		desc := strings.TrimSpace(m[3])
		if d, ok := strings.CutPrefix(desc, "- "); ok {
			desc = strings.TrimSpace(d)
		}
		l.kind, l.ok, l.num, l.desc, l.tail = kindResult, m[1] == "", atoi(m[2]), desc, m[4]
	} else if tail, ok := strings.CutPrefix(body, "#"); ok {
		l.kind, l.tail = kindDiag, tail
	}
	return l
}

// canonical renders l as Writer would print it, less the indentation.
func (l line) canonical() string {
	tail := strings.TrimSpace(l.tail)
	switch l.kind {
	case kindVersion:
		return versionLine
	case kindPlan:
		return withTail("1.."+strconv.Itoa(l.num), tail)
	case kindResult:
		return resultLine(l.ok, l.num, l.desc, tail)
	}
	return strings.TrimSpace("# " + strings.TrimPrefix(l.tail, " "))
}

// resultLine renders "ok N desc # tail", each part after N optional.
func resultLine(ok bool, n int, desc, tail string) string {
	s := "not ok " + strconv.Itoa(n)
	if ok {
		s = s[len("not "):]
	}
	if desc != "" {
		s += " " + desc
	}
	return withTail(s, tail)
}

func withTail(s, tail string) string {
	if tail != "" {
		s += " # " + tail
	}
	return s
}

func atoi(digits string) int {
	n, _ := strconv.Atoi(digits) // at most nine digits, checked by the grammar
	return n
}

// eachLine calls fn for every line of r, numbered from 1, without its "\n".
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
				s = strings.TrimSuffix(string(b), "\n")
			}
			fn(n, s, tooLong)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("ktap: reading line %d: %w", n, err)
		}
	}
}

package ktap

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Problem is one violation of KTAP version 1 found by Validate.
type Problem struct {
	Line int // from 1; 0 for the input as a whole
	Msg  string
}

func (p Problem) String() string { return fmt.Sprintf("line %d: %s", p.Line, p.Msg) }

// vframe is an open level of nesting while validating.
type vframe struct {
	line     int    // its version line
	name     string // from "# Subtest: "
	plan     int    // -1 until a plan line
	planLine int
	late     bool // the plan came after results
	results  int
	last     int     // number of the last result
	sub      *vframe // closed subtest waiting for its result line
}

type validator struct {
	stack  []*vframe
	probs  []Problem
	begun  bool
	broken bool // the first KTAP line was not a top-level version line
}

// Validate checks that r holds pure KTAP version 1 as Writer prints it and
// returns every violation in input order (nil if none): lines outside the
// grammar (unknown lines included, though the specification tolerates them),
// a first line other than "KTAP version 1", nesting other than exactly four
// spaces per level, a subtest without its version line, plan or result line,
// a plan neither before the first result nor after the last, numbering other
// than 1..n, a plan count unlike the number of results, misspelled
// directives, TIMEOUT or ERROR on an "ok" line, and irregular spacing.
func Validate(r io.Reader) []Problem {
	var v validator
	if err := eachLine(r, v.line); err != nil {
		v.add(0, "%v", err)
	}
	if !v.begun {
		v.add(0, "no KTAP output: want %q", versionLine)
	}
	for len(v.stack) > 0 {
		v.pop()
	}
	return v.probs
}

func (v *validator) add(n int, format string, args ...any) {
	v.probs = append(v.probs, Problem{Line: n, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) top() *vframe { return v.stack[len(v.stack)-1] }

func (v *validator) line(n int, s string, tooLong bool) {
	v.begun = true
	if tooLong {
		v.add(n, "line longer than %d bytes", maxLine)
		return
	}
	if t, ok := strings.CutSuffix(s, "\r"); ok {
		v.add(n, "line ends with a carriage return")
		s = t
	}
	if t := strings.TrimRight(s, " \t"); t != s {
		v.add(n, "trailing white space")
		s = t
	}
	l := classify(s)
	if l.kind == kindUnknown {
		v.add(n, "%s", unknownLine(l.body))
		return
	}
	if l.indent%indentStep != 0 {
		v.add(n, "indented %d spaces: each nesting level is %d spaces", l.indent, indentStep)
		return
	}
	depth := l.indent / indentStep
	if len(v.stack) == 0 {
		v.stack = []*vframe{{line: n, plan: -1}}
		if l.kind == kindVersion && depth == 0 {
			v.checkVersion(n, l)
			return
		}
		v.add(n, "KTAP output must begin with %q", versionLine)
	}
	switch {
	case depth > len(v.stack) || (depth == len(v.stack) && l.kind != kindVersion):
		v.add(n, "indented %d spaces inside a test at %d: a subtest begins with %q at %d",
			l.indent, (len(v.stack)-1)*indentStep, versionLine, len(v.stack)*indentStep)
		return
	case l.kind == kindVersion && depth == 0:
		v.add(n, "second top-level version line (first on line %d)", v.stack[0].line)
		v.checkVersion(n, l)
		return
	case l.kind == kindVersion:
		v.checkVersion(n, l)
		v.closeTo(depth - 1)
		v.settle(v.top())
		v.stack = append(v.stack, &vframe{line: n, plan: -1})
		return
	}
	v.closeTo(depth)
	f := v.top()
	switch l.kind {
	case kindDiag:
		if l.tail != "" && l.tail[0] != ' ' {
			v.add(n, "diagnostic line must start with \"# \"")
		}
		if name, ok := strings.CutPrefix(l.tail, " "+subtestTag); ok && f.name == "" && f.results == 0 {
			f.name = name
		}
	case kindPlan:
		v.plan(n, l, f)
	case kindResult:
		v.result(n, l, f)
	}
}

func (v *validator) checkVersion(n int, l line) {
	if l.body != versionLine {
		v.add(n, "version line %q: want %q", l.body, versionLine)
	}
}

// closeTo closes the subtests deeper than depth.
func (v *validator) closeTo(depth int) {
	for len(v.stack)-1 > depth {
		v.pop()
	}
}

// settle reports a closed subtest of f that never got its result line.
func (v *validator) settle(f *vframe) {
	if f.sub != nil {
		v.add(f.sub.line, "subtest %q has no result line in its parent", f.sub.name)
		f.sub = nil
	}
}

func (v *validator) pop() {
	f := v.top()
	v.stack = v.stack[:len(v.stack)-1]
	v.settle(f)
	switch {
	case f.plan < 0:
		v.add(f.line, "test has no plan line")
	case f.plan != f.results:
		v.add(f.planLine, "plan 1..%d but %d results", f.plan, f.results)
	}
	if len(v.stack) > 0 {
		v.top().sub = f
	}
}

func (v *validator) plan(n int, l line, f *vframe) {
	if want := "1.." + strconv.Itoa(l.num); l.body != want && !strings.HasPrefix(l.body, want+" # ") {
		v.add(n, "malformed plan line %.60q: want %q", l.body, want)
	}
	if f.plan >= 0 {
		v.add(n, "second plan line (first on line %d)", f.planLine)
		return
	}
	f.plan, f.planLine, f.late = l.num, n, f.results > 0 || f.sub != nil
}

func (v *validator) result(n int, l line, f *vframe) {
	if f.late {
		v.add(n, "result after the trailing plan on line %d", f.planLine)
	}
	if l.num != f.last+1 {
		v.add(n, "test number %d, want %d", l.num, f.last+1)
	}
	f.results++
	f.last = l.num
	if f.sub != nil {
		if f.sub.name != "" && f.sub.name != l.desc {
			v.add(n, "result %q closes subtest %q", l.desc, f.sub.name)
		}
		f.sub = nil
	}
	tail := strings.TrimSpace(l.tail)
	word, _, _ := strings.Cut(tail, " ")
	up := strings.ToUpper(word)
	switch {
	case l.hash && tail == "":
		v.add(n, "nothing after '#'")
		return
	case isDirective(up) && word != up:
		v.add(n, "directive %q must be spelled %q", word, up)
	case (up == DirTimeout || up == DirError) && l.ok:
		v.add(n, "%s directive on an \"ok\" line: want \"not ok\"", up)
	}
	want := "not ok " + strconv.Itoa(l.num)
	if l.ok {
		want = want[len("not "):]
	}
	if l.desc != "" {
		want += " " + l.desc
	}
	if l.hash {
		want += " # " + tail
	}
	if l.body != want {
		v.add(n, "malformed result line %.60q: want %.60q", l.body, want)
	}
}

// unknownLine explains a line outside the grammar, naming the line kind it
// seems to attempt.
func unknownLine(body string) string {
	low := strings.ToLower(body)
	words := strings.Fields(low)
	switch {
	case strings.HasPrefix(low, "ok") || (len(words) > 1 && words[0] == "not" && strings.HasPrefix(words[1], "ok")):
		return fmt.Sprintf("malformed result line %.60q: want \"ok N description\" or \"not ok N description\"", body)
	case strings.Contains(low, "tap version"):
		return fmt.Sprintf("malformed version line %.60q: want %q", body, versionLine)
	case strings.HasPrefix(body, "1.."):
		return fmt.Sprintf("malformed plan line %.60q: want \"1..N\"", body)
	}
	return fmt.Sprintf("not a KTAP line: %.60q", body)
}

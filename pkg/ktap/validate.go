package ktap

import (
	"fmt"
	"io"
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
	line, plan, planLine int // plan is -1 until a plan line
	name                 string
	results, last        int // count and number of the last result
	sub                  *vframe
}

type validator struct {
	stack []*vframe
	probs []Problem
}

// Validate checks that r holds nothing but KTAP version 1 as Writer prints
// it, and returns every violation in input order, or nil: lines outside the
// grammar (even the unknown lines the specification tolerates), a first line
// other than "KTAP version 1", nesting other than four spaces per level, a
// subtest without its version line, plan or result line, a plan after a
// result or a subtest (KTAP puts it right after the version line, and the
// kernel's kunit.py counts the results against it), numbering other than 1..n, a
// plan count unlike the number of results, a "# Subtest:" name unlike its
// result's description, misspelled directives, TIMEOUT or ERROR on an "ok"
// line, and irregular spacing.
func Validate(r io.Reader) []Problem {
	var v validator
	if err := eachLine(r, v.line); err != nil {
		v.add(0, "%v", err)
	}
	if len(v.stack) == 0 {
		v.add(0, "no KTAP output: want %q", versionLine)
	}
	v.closeTo(-1)
	return v.probs
}

func (v *validator) add(n int, format string, args ...any) {
	v.probs = append(v.probs, Problem{Line: n, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) top() *vframe { return v.stack[len(v.stack)-1] }

func (v *validator) line(n int, s string, tooLong bool) {
	if tooLong {
		v.add(n, "line longer than %d bytes", maxLine)
		return
	}
	if t := strings.TrimRight(s, " \t\r"); t != s {
		v.add(n, "trailing white space or carriage return")
		s = t
	}
	l := classify(s)
	depth := l.indent / indentStep
	switch {
	case l.kind == kindUnknown:
		v.add(n, "%s", unknownLine(l.body))
		return
	case l.indent%indentStep != 0:
		v.add(n, "indented %d spaces: each nesting level is %d spaces", l.indent, indentStep)
		return
	case l.body != l.canonical():
		v.add(n, "malformed line %.60q: want %.60q", l.body, l.canonical())
	}
	if len(v.stack) == 0 {
		v.stack = []*vframe{{line: n, plan: -1}}
		if l.kind == kindVersion && depth == 0 {
			return
		}
		v.add(n, "KTAP output must begin with %q", versionLine)
	}
	switch {
	case depth > len(v.stack) || (depth == len(v.stack) && l.kind != kindVersion):
		v.add(n, "indented %d spaces inside a test at %d: a subtest begins with %q at %d",
			l.indent, (len(v.stack)-1)*indentStep, versionLine, len(v.stack)*indentStep)
	case l.kind == kindVersion && depth == 0:
		v.add(n, "second top-level version line (first on line %d)", v.stack[0].line)
	case l.kind == kindVersion:
		v.closeTo(depth - 1)
		v.settle(v.top())
		v.stack = append(v.stack, &vframe{line: n, plan: -1})
	default:
		v.closeTo(depth)
		f := v.top()
		switch l.kind {
		case kindDiag:
			if name, ok := strings.CutPrefix(l.body, subtestTag); ok && f.name == "" && f.results == 0 {
				f.name = name
			}
		case kindPlan:
			switch {
			case f.plan >= 0:
				v.add(n, "second plan line (first on line %d)", f.planLine)
			default:
				if f.results > 0 || f.sub != nil {
					v.add(n, "plan 1..%d after results: the plan goes right after the version line", l.num)
				}
				f.plan, f.planLine = l.num, n
			}
		case kindResult:
			v.result(n, l, f)
		}
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
	if f.plan < 0 {
		v.add(f.line, "test has no plan line")
	} else if f.plan != f.results {
		v.add(f.planLine, "plan 1..%d but %d results", f.plan, f.results)
	}
	if len(v.stack) > 0 {
		v.top().sub = f
	}
}

func (v *validator) result(n int, l line, f *vframe) {
	if l.num != f.last+1 {
		v.add(n, "test number %d, want %d", l.num, f.last+1)
	}
	f.results, f.last = f.results+1, l.num
	if f.sub != nil && f.sub.name != "" && f.sub.name != l.desc {
		v.add(n, "result %q closes subtest %q", l.desc, f.sub.name)
	}
	f.sub = nil
	word, _, _ := strings.Cut(strings.TrimSpace(l.tail), " ")
	switch up := strings.ToUpper(word); {
	case isDirective(up) && word != up:
		v.add(n, "directive %q must be spelled %q", word, up)
	case (up == DirTimeout || up == DirError) && l.ok:
		v.add(n, "%s directive on an \"ok\" line: want \"not ok\"", up)
	}
}

// unknownLine explains a line outside the grammar, naming the kind of line
// it seems to attempt.
func unknownLine(body string) string {
	low := strings.ToLower(body)
	switch w := strings.Fields(low + " ."); { // the "." keeps w[1] in range
	case w[0] == "ok" || w[0] == "not" && w[1] == "ok" || resultRE.MatchString(low):
		return fmt.Sprintf("malformed result line %.60q: want \"ok N description\" or \"not ok N description\"", body)
	case strings.HasPrefix(body, "1.."):
		return fmt.Sprintf("malformed plan line %.60q: want \"1..N\"", body)
	}
	return fmt.Sprintf("not a KTAP line (want %q, \"1..N\", \"ok N\", \"not ok N\" or \"# \"): %.60q", versionLine, body)
}

package ktap

import (
	"errors"
	"io"
	"strings"
)

// ErrNoKTAP reports input without any KTAP version line.
var ErrNoKTAP = errors.New("ktap: no KTAP version line")

// maxDepth bounds nesting, so that hostile input cannot deepen the tree (and
// the recursion of Passed and Find) without end.
const maxDepth = 64

// Result is one test result line, with the subtest it closes, if any.
type Result struct {
	Number      int
	OK          bool
	Description string
	Directive   Directive
	Diags       []string // diagnostic lines of this level just before the result
	Sub         *Report  // the subtest printed just before this result
	Line        int      // line number in the input, from 1
}

// Report is one level of KTAP output: a version line, a plan and results.
type Report struct {
	Version  int // 1 for "KTAP version 1"; 13 or 14 for "TAP version N"
	Plan     int // -1 if no plan line was seen
	LatePlan int // line of a plan printed after a result or subtest, or 0: KTAP and kunit.py reject it
	Results  []Result
	Diags    []string // diagnostic lines not attached to a result
	Name     string   // from "# Subtest: "
}

// frame is an open level of nesting while parsing.
type frame struct {
	rep     *Report
	indent  int
	pending *Report  // closed subtest waiting for its result line
	diags   []string // diagnostic lines waiting for the next result
}

type parser struct{ stack []*frame }

// Parse reads KTAP from a serial console log. It drops a trailing "\r" and
// ignores every line that does not fit the grammar at the indentation of an
// open test: kernel messages, init output, noise. A version line indented
// deeper (by four spaces, or two in older output) than the open test begins
// a subtest, attached to the next result at the parent's level; so subtests
// printed by successive boots join the one top-level report that the first
// boot began, and a later top-level version line is ignored.
//
// A subtest whose result line never comes (the log was cut, or its boot died)
// is kept as a Result with Number 0, Line 0, OK false and an ERROR directive,
// so it is neither lost nor taken for a pass. Parse returns ErrNoKTAP if the
// input has no version line.
func Parse(r io.Reader) (*Report, error) {
	var p parser
	err := eachLine(r, func(n int, s string, tooLong bool) {
		if !tooLong {
			p.line(n, strings.TrimRight(s, " \t\r"))
		}
	})
	if err != nil {
		return nil, err
	}
	if len(p.stack) == 0 {
		return nil, ErrNoKTAP
	}
	p.seek(p.stack[0].indent)
	p.stack[0].close()
	return p.stack[0].rep, nil
}

func (p *parser) top() *frame { return p.stack[len(p.stack)-1] }

func (p *parser) line(n int, s string) {
	switch l := classify(s); {
	case l.kind == kindUnknown:
	case len(p.stack) == 0:
		if l.kind == kindVersion {
			p.stack = []*frame{{rep: &Report{Version: l.num, Plan: -1}, indent: l.indent}}
		}
	case l.kind == kindVersion:
		p.open(l)
	case p.seek(l.indent):
		p.apply(n, l)
	}
}

// seek closes the subtests indented deeper than indent and reports whether
// a test open at exactly that indentation remains.
func (p *parser) seek(indent int) bool {
	for i := len(p.stack) - 1; i >= 0 && p.stack[i].indent >= indent; i-- {
		if p.stack[i].indent == indent {
			for len(p.stack)-1 > i {
				p.pop()
			}
			return true
		}
	}
	return false
}

// open begins a subtest at a version line.
func (p *parser) open(l line) {
	if l.indent < p.stack[0].indent {
		return
	}
	for p.top().indent > l.indent {
		p.pop()
	}
	if p.top().indent == l.indent {
		if len(p.stack) == 1 {
			return // a later boot repeating the top-level header
		}
		p.pop() // a subtest cut short, then a new one
	}
	if len(p.stack) >= maxDepth {
		return
	}
	// Diagnostics before a subtest belong to the parent, not its next result.
	top := p.top()
	top.rep.Diags, top.diags = append(top.rep.Diags, top.diags...), nil
	top.orphan()
	p.stack = append(p.stack, &frame{rep: &Report{Version: l.num, Plan: -1}, indent: l.indent})
}

// pop closes the innermost subtest and hands it to its parent.
func (p *parser) pop() {
	f := p.top()
	p.stack = p.stack[:len(p.stack)-1]
	f.close()
	p.top().pending = f.rep
}

func (f *frame) close() {
	f.orphan()
	f.rep.Diags, f.diags = append(f.rep.Diags, f.diags...), nil
}

// orphan records a pending subtest that got no result line.
func (f *frame) orphan() {
	if f.pending != nil {
		f.rep.Results = append(f.rep.Results, Result{Description: f.pending.Name, Sub: f.pending,
			Directive: Directive{Kind: DirError, Reason: "no result line for this subtest"}})
		f.pending = nil
	}
}

func (p *parser) apply(n int, l line) {
	f := p.top()
	switch l.kind {
	case kindDiag:
		if name, ok := strings.CutPrefix(l.body, subtestTag); ok && f.rep.Name == "" && len(f.rep.Results) == 0 {
			f.rep.Name = strings.TrimSpace(name)
		} else {
			f.diags = append(f.diags, strings.TrimPrefix(l.tail, " "))
		}
	case kindPlan:
		if f.rep.Plan < 0 {
			f.rep.Plan = l.num
			if len(f.rep.Results) > 0 || f.pending != nil {
				f.rep.LatePlan = n
			}
		}
		f.rep.Diags, f.diags = append(f.rep.Diags, f.diags...), nil
	case kindResult:
		f.rep.Results = append(f.rep.Results, Result{Number: l.num, OK: l.ok, Description: l.desc,
			Directive: parseDirective(l.tail), Diags: f.diags, Sub: f.pending, Line: n})
		f.diags, f.pending = nil, nil
	}
}

// Passed reports whether every result passed or was skipped, the results are
// numbered 1..n with n matching a plan that came before them, and the same
// holds in every subtest. A report with neither plan nor results has not
// passed.
func (r *Report) Passed() bool {
	if r == nil || (r.Plan < 0 && len(r.Results) == 0) || (r.Plan >= 0 && r.Plan != len(r.Results)) || r.LatePlan != 0 {
		return false
	}
	for i, res := range r.Results {
		failed := !res.OK && res.Directive.Kind != DirSkip
		if failed || res.Number != i+1 || (res.Sub != nil && !res.Sub.Passed()) {
			return false
		}
	}
	return true
}

// Find returns the first result whose description is desc, looking at each
// result before its subtest, or nil. Writer sanitizes descriptions: to find
// what it printed for d, look for Sanitize(d).
func (r *Report) Find(desc string) *Result {
	if r == nil {
		return nil
	}
	for i := range r.Results {
		if r.Results[i].Description == desc {
			return &r.Results[i]
		}
		if found := r.Results[i].Sub.Find(desc); found != nil {
			return found
		}
	}
	return nil
}

package ktap

import (
	"errors"
	"io"
	"strings"
)

// ErrNoKTAP reports input without any KTAP version line.
var ErrNoKTAP = errors.New("ktap: no KTAP version line")

// maxDepth bounds nesting so hostile input cannot grow the tree without end.
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
	Version int // 1 for "KTAP version 1"; 13 or 14 for "TAP version N"
	Plan    int // -1 if no plan line was seen
	Results []Result
	Diags   []string // diagnostic lines not followed by a result at this level
	Name    string   // from "# Subtest: "
}

// frame is an open level of nesting while parsing.
type frame struct {
	rep     *Report
	indent  int
	pending *Report  // closed subtest waiting for its result line
	diags   []string // diagnostic lines waiting for the next result
}

type parser struct{ stack []*frame }

// Parse reads KTAP from a serial console log. Lines that do not fit the
// grammar at the indentation of an open test are ignored: kernel messages,
// init output, noise. A trailing "\r" is dropped. A version line (or a legacy
// "# Subtest:" line) indented deeper than the open test begins a subtest,
// which is attached to the next result at the parent's level; so subtests
// printed by successive boots join the one top-level report the first boot
// started, and a top-level version line printed again is ignored.
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
	for len(p.stack) > 1 {
		p.pop()
	}
	root := p.stack[0]
	root.orphan()
	root.rep.Diags = append(root.rep.Diags, root.diags...)
	return root.rep, nil
}

func (p *parser) top() *frame { return p.stack[len(p.stack)-1] }

func (p *parser) line(n int, s string) {
	l := classify(s)
	name, isSubtest := strings.CutPrefix(l.tail, " "+subtestTag)
	isSubtest = isSubtest && l.kind == kindDiag
	switch {
	case l.kind == kindUnknown:
	case len(p.stack) == 0:
		if l.kind == kindVersion {
			p.stack = []*frame{{rep: &Report{Version: l.num, Plan: -1}, indent: l.indent}}
		}
	case l.kind == kindVersion || (isSubtest && l.indent > p.top().indent):
		p.open(l, strings.TrimSpace(name))
	case p.seek(l.indent):
		p.apply(n, l, isSubtest, strings.TrimSpace(name))
	}
}

// seek closes the subtests indented deeper than indent and reports whether
// a test open at exactly that indentation remains.
func (p *parser) seek(indent int) bool {
	i := len(p.stack) - 1
	for i >= 0 && p.stack[i].indent > indent {
		i--
	}
	if i < 0 || p.stack[i].indent != indent {
		return false
	}
	for len(p.stack)-1 > i {
		p.pop()
	}
	return true
}

// open handles a version line or a "# Subtest:" line that may begin a test.
func (p *parser) open(l line, name string) {
	if l.indent < p.stack[0].indent {
		return
	}
	for len(p.stack) > 1 && p.top().indent > l.indent {
		p.pop()
	}
	if top := p.top(); top.indent == l.indent {
		fresh := top.rep.Plan < 0 && len(top.rep.Results) == 0 && top.pending == nil
		switch {
		case l.kind == kindVersion && fresh && top.rep.Version == 0:
			top.rep.Version = l.num // "# Subtest:" came first
			return
		case l.kind == kindDiag && fresh && top.rep.Name == "":
			top.rep.Name = name
			return
		case len(p.stack) == 1:
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
	rep := &Report{Plan: -1}
	if l.kind == kindVersion {
		rep.Version = l.num
	} else {
		rep.Name = name
	}
	top.orphan()
	p.stack = append(p.stack, &frame{rep: rep, indent: l.indent})
}

// pop closes the innermost subtest and hands it to its parent.
func (p *parser) pop() {
	f := p.top()
	p.stack = p.stack[:len(p.stack)-1]
	f.orphan()
	f.rep.Diags = append(f.rep.Diags, f.diags...)
	parent := p.top()
	parent.orphan()
	parent.pending = f.rep
}

// orphan records a pending subtest that got no result line.
func (f *frame) orphan() {
	if f.pending == nil {
		return
	}
	f.rep.Results = append(f.rep.Results, Result{
		Description: f.pending.Name,
		Directive:   Directive{Kind: DirError, Reason: "no result line for this subtest"},
		Sub:         f.pending,
	})
	f.pending = nil
}

func (p *parser) apply(n int, l line, isSubtest bool, name string) {
	f := p.top()
	switch l.kind {
	case kindDiag:
		if isSubtest && f.rep.Name == "" && len(f.rep.Results) == 0 {
			f.rep.Name = name
			return
		}
		f.diags = append(f.diags, strings.TrimPrefix(l.tail, " "))
	case kindPlan:
		if f.rep.Plan < 0 {
			f.rep.Plan = l.num
		}
		f.rep.Diags = append(f.rep.Diags, f.diags...)
		f.diags = nil
	case kindResult:
		f.rep.Results = append(f.rep.Results, Result{
			Number: l.num, OK: l.ok, Description: l.desc, Directive: parseDirective(l.tail),
			Diags: f.diags, Sub: f.pending, Line: n,
		})
		f.diags, f.pending = nil, nil
	}
}

// Passed reports whether every result passed or was skipped, the results are
// numbered 1..n with n matching the plan, and the same holds in every
// subtest. A report with neither plan nor results has not passed.
func (r *Report) Passed() bool {
	if r == nil || (r.Plan < 0 && len(r.Results) == 0) || (r.Plan >= 0 && r.Plan != len(r.Results)) {
		return false
	}
	for i, res := range r.Results {
		if res.Number != i+1 || (!res.OK && res.Directive.Kind != DirSkip) {
			return false
		}
		if res.Sub != nil && !res.Sub.Passed() {
			return false
		}
	}
	return true
}

// Find returns the first result, depth first, whose description is desc, or
// nil. Writer sanitizes descriptions: look for Sanitize(desc).
func (r *Report) Find(desc string) *Result {
	if r == nil {
		return nil
	}
	for i := range r.Results {
		res := &r.Results[i]
		if res.Description == desc {
			return res
		}
		if found := res.Sub.Find(desc); found != nil {
			return found
		}
	}
	return nil
}

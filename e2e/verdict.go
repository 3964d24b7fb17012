package e2e

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/kho-sim/kho-sim/pkg/ktap"
)

// DoneDiag is the top-level diagnostic the last boot prints when the chain
// is complete ("# kho-sim: done").
const DoneDiag = "kho-sim: done"

// BootVerdict is what one boot of a kexec chain reported: a top-level
// result and the subtest printed before it.
type BootVerdict struct {
	Number      int      // top-level test number; 0 if the boot printed no result line
	Description string   // of the top-level result: "boot-2"
	Name        string   // of the subtest: "boot-2 hop 1, scenario default"
	OK          bool     // the result is ok and its subtest passed
	Skip        string   // reason of a top-level SKIP: the boot never ran
	Passed      int      // subtest results that passed or were skipped
	Total       int      // subtest results
	Failures    []string // descriptions of the subtest results that failed
	Notes       []Note   // the subtest results that failed or failed as expected (XFAIL)
	Phases      []string // "phase ..." diagnostics of the boot, in order
}

// Note is a subtest result that did not simply pass, with the diagnostics
// printed right after it: kho-sim prints the reasons of a result there.
type Note struct {
	Result string   // "not ok 3 LUO FDT ..." or "ok 13 ... # XFAIL reason"
	XFail  bool     // an expected failure, which counts as a pass
	Diags  []string // the reasons
}

func (n Note) String() string {
	if len(n.Diags) == 0 {
		return n.Result
	}
	return n.Result + ": " + strings.Join(n.Diags, "; ")
}

// Verdict judges a whole run.
type Verdict struct {
	Boots    []BootVerdict
	Phases   []string // top-level "phase ..." diagnostics, which no single boot owns
	Problems []string // why the run did not pass; empty if it did
}

// Passed reports whether the run passed.
func (v *Verdict) Passed() bool { return len(v.Problems) == 0 }

// Expect is what a run must report. A boot it does not name in Fail, Skip or
// XFail must pass. The texts are substrings, matched case-sensitively.
type Expect struct {
	Boots int            // boots in the plan; 0: the report's own plan
	Fail  map[int]string // boot -> text in one of its failing results or their diagnostics
	Skip  map[int]string // boot -> text in the reason of its top-level SKIP (it never ran)
	XFail map[int]string // boot -> text in one of its XFAIL results or their diagnostics; the boot passes
}

// Judge checks the report of a run that should have had boots boots (0:
// take the report's own plan) that all pass: see JudgeExpect.
func Judge(rep *ktap.Report, boots int) *Verdict {
	return JudgeExpect(rep, Expect{Boots: boots})
}

// JudgeExpect checks a report against want. It wants a plan of want.Boots,
// that many top-level results, each ok with a non-empty passing subtest
// unless want says otherwise, the whole report passing by ktap's rules (only
// its top-level numbering when failures are expected), and the final DoneDiag.
func JudgeExpect(rep *ktap.Report, want Expect) *Verdict {
	v := &Verdict{}
	if rep == nil {
		v.Problems = append(v.Problems, "no KTAP report")
		return v
	}
	boots := want.Boots
	if boots <= 0 {
		boots = rep.Plan
	}
	if rep.Plan != boots {
		v.Problems = append(v.Problems, fmt.Sprintf("plan is 1..%d, want 1..%d", rep.Plan, boots))
	}
	if len(rep.Results) != boots {
		v.Problems = append(v.Problems, fmt.Sprintf("%d boots reported, want %d", len(rep.Results), boots))
	}
	for i, res := range rep.Results {
		b := judgeBoot(res)
		v.Boots = append(v.Boots, b)
		if p := bootProblem(i+1, res, b, want); p != "" {
			v.Problems = append(v.Problems, p)
		}
	}
	for n := range want.Fail {
		if n > len(rep.Results) {
			v.Problems = append(v.Problems, fmt.Sprintf("boot %d: not reported, want a failure", n))
		}
	}
	v.Problems = append(v.Problems, latePlans(rep)...)
	v.Phases = filterPhases(rep.Diags)
	if len(v.Problems) == 0 && !passedOrNumbered(rep, len(want.Fail) > 0) {
		v.Problems = append(v.Problems, "report did not pass (numbering or plan mismatch)")
	}
	if !slices.Contains(rep.Diags, DoneDiag) {
		v.Problems = append(v.Problems, fmt.Sprintf("no %q line: the last boot did not finish", "# "+DoneDiag))
	}
	return v
}

// latePlans names every plan printed after results, at any depth: KTAP
// puts it right after the version line, and kunit.py reports errors and
// crashed tests for one that comes later.
func latePlans(rep *ktap.Report) []string {
	var probs []string
	if rep.LatePlan != 0 {
		name := rep.Name
		if name == "" {
			name = "top level"
		}
		probs = append(probs, fmt.Sprintf("%s: plan on line %d comes after results", name, rep.LatePlan))
	}
	for _, res := range rep.Results {
		if res.Sub != nil {
			probs = append(probs, latePlans(res.Sub)...)
		}
	}
	return probs
}

// bootProblem says how boot n falls short of want, or returns "".
func bootProblem(n int, res ktap.Result, b BootVerdict, want Expect) string {
	name := fmt.Sprintf("boot %d (%s)", n, b.Description)
	if text, ok := want.Skip[n]; ok {
		switch {
		case res.Directive.Kind != ktap.DirSkip || res.Sub != nil:
			return fmt.Sprintf("%s: ran, want a SKIP saying %q", name, text)
		case !strings.Contains(res.Directive.Reason, text):
			return fmt.Sprintf("%s: SKIP %q, want one saying %q", name, res.Directive.Reason, text)
		}
		return ""
	}
	switch {
	case res.Number == 0:
		return name + ": no result line (the boot died or the log was cut)"
	case res.Sub == nil:
		return name + ": no subtest"
	case b.Total == 0:
		return name + ": subtest has no results"
	}
	if text, ok := want.Fail[n]; ok {
		switch {
		case b.OK:
			return fmt.Sprintf("%s: passed, want a failure saying %q", name, text)
		case !notesSay(b.Notes, false, text):
			return fmt.Sprintf("%s: failed, but no failure says %q: %s", name, text, notesString(b.Notes))
		}
		return ""
	}
	if !b.OK {
		msg := name + ": failed"
		if len(b.Failures) > 0 {
			msg += ": " + strings.Join(b.Failures, ", ")
		}
		return msg
	}
	if text, ok := want.XFail[n]; ok && !notesSay(b.Notes, true, text) {
		return fmt.Sprintf("%s: no XFAIL result says %q", name, text)
	}
	return ""
}

func notesSay(notes []Note, xfail bool, text string) bool {
	return slices.ContainsFunc(notes, func(n Note) bool {
		return n.XFail == xfail && strings.Contains(n.String(), text)
	})
}

func notesString(notes []Note) string {
	s := make([]string, len(notes))
	for i, n := range notes {
		s[i] = n.String()
	}
	return strings.Join(s, " | ")
}

// passedOrNumbered applies ktap's Passed, or, when failures are expected,
// only its numbering rule to the top level.
func passedOrNumbered(rep *ktap.Report, failuresExpected bool) bool {
	if !failuresExpected {
		return rep.Passed()
	}
	for i, res := range rep.Results {
		if res.Number != i+1 {
			return false
		}
	}
	return true
}

func judgeBoot(res ktap.Result) BootVerdict {
	b := BootVerdict{Number: res.Number, Description: res.Description}
	if res.Directive.Kind == ktap.DirSkip && res.Sub == nil {
		b.Skip = res.Directive.Reason
	}
	if res.Sub != nil {
		b.Name = res.Sub.Name
		b.Phases = phases(res.Sub)
		for i, sr := range res.Sub.Results {
			b.Total++
			xfail := sr.Directive.Kind == ktap.DirXFail
			if sr.OK || sr.Directive.Kind == ktap.DirSkip {
				b.Passed++
			} else {
				b.Failures = append(b.Failures, fmt.Sprintf("%d %s", sr.Number, sr.Description))
			}
			if !sr.OK || xfail {
				b.Notes = append(b.Notes, Note{Result: resultLine(sr), XFail: sr.OK && xfail, Diags: diagsAfter(res.Sub, i)})
			}
		}
	}
	b.Phases = append(b.Phases, filterPhases(res.Diags)...)
	b.OK = res.OK && res.Number > 0 && res.Sub != nil && res.Sub.Passed()
	return b
}

// resultLine prints a result as its KTAP line, without indentation.
func resultLine(r ktap.Result) string {
	s := fmt.Sprintf("%d %s", r.Number, r.Description)
	if !r.OK {
		s = "not ok " + s
	} else {
		s = "ok " + s
	}
	if r.Directive.Kind != "" {
		s += " # " + strings.TrimSpace(r.Directive.Kind+" "+r.Directive.Reason)
	}
	return s
}

// diagsAfter returns the diagnostics, timings aside, between result i of r
// and the next one (ktap attaches them to the next result, or to r itself
// after the last).
func diagsAfter(r *ktap.Report, i int) []string {
	diags := r.Diags
	if i+1 < len(r.Results) {
		diags = r.Results[i+1].Diags
	}
	var out []string
	for _, d := range diags {
		if !isTiming(d) {
			out = append(out, d)
		}
	}
	return out
}

// isTiming tells a boot's timing diagnostics ("phase ...", "steps by
// operation: ...") from the reasons a result gives.
func isTiming(d string) bool {
	return strings.HasPrefix(d, "phase ") || strings.HasPrefix(d, "steps by operation: ")
}

// phases collects the "phase ..." diagnostics of a subtest, depth first.
func phases(r *ktap.Report) []string {
	var out []string
	for _, res := range r.Results {
		out = append(out, filterPhases(res.Diags)...)
		if res.Sub != nil {
			out = append(out, phases(res.Sub)...)
		}
	}
	return append(out, filterPhases(r.Diags)...)
}

func filterPhases(diags []string) []string {
	var out []string
	for _, d := range diags {
		if strings.HasPrefix(d, "phase ") {
			out = append(out, d)
		}
	}
	return out
}

// WriteSummary prints one line per boot with its phase timings, then the
// problems and the final verdict.
func (v *Verdict) WriteSummary(w io.Writer) error {
	var sb strings.Builder
	for _, b := range v.Boots {
		name := b.Name
		if name == "" {
			name = b.Description
		}
		switch {
		case b.Skip != "":
			fmt.Fprintf(&sb, "SKIP %d %s: %s\n", b.Number, name, b.Skip)
		case b.OK:
			fmt.Fprintf(&sb, "ok   %d %s: %d/%d passed\n", b.Number, name, b.Passed, b.Total)
		default:
			fmt.Fprintf(&sb, "FAIL %d %s: %d/%d passed\n", b.Number, name, b.Passed, b.Total)
		}
		for _, n := range b.Notes {
			fmt.Fprintf(&sb, "       %s\n", n)
		}
		for _, p := range b.Phases {
			fmt.Fprintf(&sb, "       %s\n", p)
		}
	}
	if len(v.Phases) > 0 {
		sb.WriteString("top-level phases:\n")
		for _, p := range v.Phases {
			fmt.Fprintf(&sb, "       %s\n", p)
		}
	}
	for _, p := range v.Problems {
		fmt.Fprintf(&sb, "problem: %s\n", p)
	}
	if v.Passed() {
		fmt.Fprintf(&sb, "PASS: %d boots, %d kexec hops\n", len(v.Boots), max(len(v.Boots)-1, 0))
	} else {
		sb.WriteString("FAIL\n")
	}
	_, err := io.WriteString(w, sb.String())
	return err
}

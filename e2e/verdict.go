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
	Passed      int      // subtest results that passed or were skipped
	Total       int      // subtest results
	Failures    []string // descriptions of the subtest results that failed
	Phases      []string // "phase ..." diagnostics of the boot, in order
}

// Verdict judges a whole run.
type Verdict struct {
	Boots    []BootVerdict
	Phases   []string // top-level "phase ..." diagnostics, which no single boot owns
	Problems []string // why the run did not pass; empty if it did
}

// Passed reports whether the run passed.
func (v *Verdict) Passed() bool { return len(v.Problems) == 0 }

// Judge checks the report of a run that should have had boots boots (0:
// take the report's own plan). It wants a plan of boots, that many top-level
// results, each ok with a non-empty passing subtest, the whole report passing
// by ktap's rules, and the final DoneDiag.
func Judge(rep *ktap.Report, boots int) *Verdict {
	v := &Verdict{}
	if rep == nil {
		v.Problems = append(v.Problems, "no KTAP report")
		return v
	}
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
		name := fmt.Sprintf("boot %d (%s)", i+1, b.Description)
		switch {
		case res.Number == 0:
			v.Problems = append(v.Problems, name+": no result line (the boot died or the log was cut)")
		case res.Sub == nil:
			v.Problems = append(v.Problems, name+": no subtest")
		case b.Total == 0:
			v.Problems = append(v.Problems, name+": subtest has no results")
		case !b.OK:
			msg := name + ": failed"
			if len(b.Failures) > 0 {
				msg += ": " + strings.Join(b.Failures, ", ")
			}
			v.Problems = append(v.Problems, msg)
		}
	}
	v.Phases = filterPhases(rep.Diags)
	if len(v.Problems) == 0 && !rep.Passed() {
		v.Problems = append(v.Problems, "report did not pass (numbering or plan mismatch)")
	}
	if !slices.Contains(rep.Diags, DoneDiag) {
		v.Problems = append(v.Problems, fmt.Sprintf("no %q line: the last boot did not finish", "# "+DoneDiag))
	}
	return v
}

func judgeBoot(res ktap.Result) BootVerdict {
	b := BootVerdict{Number: res.Number, Description: res.Description}
	if res.Sub != nil {
		b.Name = res.Sub.Name
		b.Phases = phases(res.Sub)
		for _, sr := range res.Sub.Results {
			b.Total++
			if sr.OK || sr.Directive.Kind == ktap.DirSkip {
				b.Passed++
			} else {
				b.Failures = append(b.Failures, fmt.Sprintf("%d %s", sr.Number, sr.Description))
			}
		}
	}
	b.Phases = append(b.Phases, filterPhases(res.Diags)...)
	b.OK = res.OK && res.Number > 0 && res.Sub != nil && res.Sub.Passed()
	return b
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
		status := "ok"
		if !b.OK {
			status = "FAIL"
		}
		name := b.Name
		if name == "" {
			name = b.Description
		}
		fmt.Fprintf(&sb, "%-4s %d %s: %d/%d passed\n", status, b.Number, name, b.Passed, b.Total)
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

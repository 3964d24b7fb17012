package ktap

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

// dump renders a report tree one line per report and per result, so that a
// test states the whole expected tree as text.
func dump(r *Report) string {
	var b strings.Builder
	var walk func(r *Report, indent string)
	walk = func(r *Report, indent string) {
		late := ""
		if r.LatePlan != 0 {
			late = fmt.Sprintf(" late=%d", r.LatePlan)
		}
		fmt.Fprintf(&b, "%sv%d plan=%d%s name=%q diags=%q\n", indent, r.Version, r.Plan, late, r.Name, r.Diags)
		for _, res := range r.Results {
			fmt.Fprintf(&b, "%s%d ok=%t %q %q %q diags=%q line=%d\n", indent, res.Number, res.OK,
				res.Description, res.Directive.Kind, res.Directive.Reason, res.Diags, res.Line)
			if res.Sub != nil {
				walk(res.Sub, indent+"  ")
			}
		}
	}
	walk(r, "")
	return b.String()
}

func readLog(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("testdata/two-boots.log")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// cut returns log up to and including the first line that is exactly last.
func cut(t *testing.T, log, last string) string {
	t.Helper()
	i := strings.Index(log, "\n"+last+"\n")
	if i < 0 {
		t.Fatalf("%q not in log", last)
	}
	return log[:i+len(last)+2]
}

func TestParse(t *testing.T) {
	log := readLog(t)
	tests := []struct {
		name   string
		in     string
		want   string
		passed bool
	}{
		{"two boots", log, `v1 plan=3 name="" diags=["kho-sim: 3 boots, 2 hops" "Totals: pass:2 fail:1 xfail:0 xpass:0 skip:0 error:0"]
1 ok=true "hop-0" "" "" diags=[] line=25
  v1 plan=2 name="hop-0" diags=[]
  1 ok=true "preserve" "" "" diags=["reserved 0x10000000+0x1000000"] line=22
  2 ok=true "kexec-load" "SKIP" "dry run" diags=[] line=24
2 ok=false "hop-1" "" "" diags=["hop-1: finish failed"] line=38
  v1 plan=2 name="hop-1" diags=[]
  1 ok=true "retrieve" "" "" diags=[] line=34
  2 ok=false "finish" "ERROR" "count 1, want 0" diags=[] line=36
3 ok=true "summary" "" "" diags=[] line=39
`, false},
		{"truncated in second boot", cut(t, log, "    ok 1 retrieve\r"), `v1 plan=3 name="" diags=["kho-sim: 3 boots, 2 hops"]
1 ok=true "hop-0" "" "" diags=[] line=25
  v1 plan=2 name="hop-0" diags=[]
  1 ok=true "preserve" "" "" diags=["reserved 0x10000000+0x1000000"] line=22
  2 ok=true "kexec-load" "SKIP" "dry run" diags=[] line=24
0 ok=false "hop-1" "ERROR" "no result line for this subtest" diags=[] line=0
  v1 plan=2 name="hop-1" diags=[]
  1 ok=true "retrieve" "" "" diags=[] line=34
`, false},
		{"truncated between boots", cut(t, log, "ok 1 hop-0"), `v1 plan=3 name="" diags=["kho-sim: 3 boots, 2 hops"]
1 ok=true "hop-0" "" "" diags=[] line=25
  v1 plan=2 name="hop-0" diags=[]
  1 ok=true "preserve" "" "" diags=["reserved 0x10000000+0x1000000"] line=22
  2 ok=true "kexec-load" "SKIP" "dry run" diags=[] line=24
`, false},
		{"passing", "KTAP version 1\n1..2\n  KTAP version 1\n  1..1\n  ok 1 a\nok 1 sub\nok 2 b # skip later\n", `v1 plan=2 name="" diags=[]
1 ok=true "sub" "" "" diags=[] line=6
  v1 plan=1 name="" diags=[]
  1 ok=true "a" "" "" diags=[] line=5
2 ok=true "b" "SKIP" "later" diags=[] line=7
`, true},
		// Old KUnit TAP: a subtest without a version line is not one.
		{"TAP14 without nested version line", "TAP version 14\n1..1\n    # Subtest: suite\n    1..1\n    not ok 1 - case\nok 1 - suite\n", `v14 plan=1 name="" diags=[]
1 ok=true "suite" "" "" diags=[] line=6
`, true},
		{"boot died inside a subtest", "KTAP version 1\n1..2\n    KTAP version 1\n    # Subtest: hop-0\n    1..1\n[ 9.9] Kernel panic\n    KTAP version 1\n    # Subtest: hop-1\n    1..1\n    ok 1 x\nok 2 hop-1\n", `v1 plan=2 name="" diags=[]
0 ok=false "hop-0" "ERROR" "no result line for this subtest" diags=[] line=0
  v1 plan=1 name="hop-0" diags=[]
2 ok=true "hop-1" "" "" diags=[] line=11
  v1 plan=1 name="hop-1" diags=[]
  1 ok=true "x" "" "" diags=[] line=10
`, false},
		{"header repeated by a later boot", "KTAP version 1\n1..2\nok 1 a\nKTAP version 1\n1..2\nok 2 b\n", `v1 plan=2 name="" diags=[]
1 ok=true "a" "" "" diags=[] line=3
2 ok=true "b" "" "" diags=[] line=6
`, true},
		{"noise", "junk\nok 1 before KTAP\nKTAP version 1\n1..1\n  # indented noise\nok 1 a\n ok 2 misindented\n", `v1 plan=1 name="" diags=[]
1 ok=true "a" "" "" diags=[] line=6
`, true},
		// KTAP puts the plan before the results; kunit.py reports a
		// plan after them as errors and crashed tests.
		{"late plan", "KTAP version 1\nok 1 a\n1..1\n", `v1 plan=1 late=3 name="" diags=[]
1 ok=true "a" "" "" diags=[] line=2
`, false},
		{"late subtest plan", "KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: s\n    ok 1 a\n    1..1\nok 1 s\n", `v1 plan=1 name="" diags=[]
1 ok=true "s" "" "" diags=[] line=7
  v1 plan=1 late=6 name="s" diags=[]
  1 ok=true "a" "" "" diags=[] line=5
`, false},
		{"plan mismatch", "KTAP version 1\n1..2\nok 1 a\n", `v1 plan=2 name="" diags=[]
1 ok=true "a" "" "" diags=[] line=3
`, false},
		{"numbering gap", "KTAP version 1\n1..2\nok 1 a\nok 3 b\n", `v1 plan=2 name="" diags=[]
1 ok=true "a" "" "" diags=[] line=3
3 ok=true "b" "" "" diags=[] line=4
`, false},
		{"indented top level", "  KTAP version 1\n  1..1\nKTAP version 1\nok 1 outside\n  ok 1 a\n", `v1 plan=1 name="" diags=[]
1 ok=true "a" "" "" diags=[] line=5
`, true},
		{"no plan, no results", "KTAP version 1\n", "v1 plan=-1 name=\"\" diags=[]\n", false},
		{"skip all", "KTAP version 1\n1..0 # SKIP no devices\n", "v1 plan=0 name=\"\" diags=[]\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Parse(strings.NewReader(tt.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := dump(r); got != tt.want {
				t.Errorf("tree:\n%s\nwant:\n%s", got, tt.want)
			}
			if got := r.Passed(); got != tt.passed {
				t.Errorf("Passed() = %t, want %t", got, tt.passed)
			}
		})
	}
}

func TestParseNoKTAP(t *testing.T) {
	for _, in := range []string{"", "[ 0.0] Linux version 6.1\nok 1 x\n1..1\n", "ktap version 1\n"} {
		if r, err := Parse(strings.NewReader(in)); !errors.Is(err, ErrNoKTAP) || r != nil {
			t.Errorf("Parse(%q) = %v, %v; want nil, ErrNoKTAP", in, r, err)
		}
	}
}

func TestParseWriterOutput(t *testing.T) {
	var b strings.Builder
	tree(NewWriter(&b))
	r, err := Parse(strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if r.Passed() {
		t.Error("Passed() = true for a tree with a failure")
	}
	if sub := r.Find("hop _1").Sub; sub == nil || !sub.Passed() || sub.Name != "hop _1" {
		t.Errorf("subtest hop _1 = %+v, want a passing subtest with its name", sub)
	}
	if res := r.Find("retrieve _1 failed"); res == nil || res.OK || res.Line != 11 {
		t.Errorf("Find(retrieve _1 failed) = %+v, want the failed result on line 11", res)
	}
	if res := r.Find("finish"); res == nil || res.Directive != Skip("no next kernel") {
		t.Errorf("Find(finish) = %+v, want SKIP no next kernel", res)
	}
	if res := r.Find("absent"); res != nil {
		t.Errorf("Find(absent) = %+v, want nil", res)
	}
}

func TestParseLongLine(t *testing.T) {
	in := "KTAP version 1\n1..1\n" + strings.Repeat("x", 3*maxLine) + "\nok 1 after\n"
	r, err := Parse(strings.NewReader(in))
	if err != nil || !r.Passed() || r.Results[0].Line != 4 {
		t.Fatalf("Parse = %v, %v; want a passing report with the result on line 4", r, err)
	}
}

func BenchmarkParse(b *testing.B) {
	log, err := os.ReadFile("testdata/two-boots.log")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(log)))
	for b.Loop() {
		if _, err := Parse(strings.NewReader(string(log))); err != nil {
			b.Fatal(err)
		}
	}
}

func TestParseDepthLimit(t *testing.T) {
	var b strings.Builder
	for i := range 2 * maxDepth {
		fmt.Fprintf(&b, "%sKTAP version 1\n", strings.Repeat(" ", 4*i))
	}
	r, err := Parse(strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	depth := 1
	for ; len(r.Results) == 1 && r.Results[0].Sub != nil; depth++ {
		r = r.Results[0].Sub
	}
	if depth != maxDepth {
		t.Errorf("tree depth %d, want the limit %d", depth, maxDepth)
	}
}

package ktap

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestValidateWriterOutput(t *testing.T) {
	var b strings.Builder
	tree(NewWriter(&b))
	if probs := Validate(strings.NewReader(b.String())); probs != nil {
		t.Errorf("Validate(writer output) = %v, want none", probs)
	}
}

func TestValidate(t *testing.T) {
	// Each input breaks one rule; want lists "line: message substring" per
	// problem, in order.
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"valid nested", "KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: s\n    1..1\n    ok 1 a\n# s done\nok 1 s\n", nil},
		{"valid plan after diagnostics", "KTAP version 1\n# hi\n1..2\nok 1 a # SKIP why\nnot ok 2 b # TIMEOUT 30 s\n", nil},
		{"late plan", "KTAP version 1\n# hi\nok 1 a # SKIP why\nnot ok 2 b # TIMEOUT 30 s\n1..2\n", []string{"5:plan 1..2 after results"}},
		{"empty", "", []string{"0:no KTAP output"}},
		{"noise line", "KTAP version 1\n1..1\n[    1.234] kernel msg\nok 1 a\n", []string{"3:not a KTAP line"}},
		{"no version line", "1..1\nok 1 a\n", []string{"1:must begin with \"KTAP version 1\""}},
		{"TAP version", "TAP version 13\n1..0\n", []string{"1:want \"KTAP version 1\""}},
		{"version 2", "KTAP version 2\n1..0\n", []string{"1:malformed line \"KTAP version 2\": want \"KTAP version 1\""}},
		{"malformed version", "KTAP version one\n1..0\n", []string{"1:not a KTAP line (want \"KTAP version 1\"", "2:must begin with"}},
		{"second top-level version", "KTAP version 1\n1..0\nKTAP version 1\n", []string{"3:second top-level version line"}},
		{"missing plan", "KTAP version 1\nok 1 a\n", []string{"1:no plan line"}},
		{"plan in the middle", "KTAP version 1\nok 1 a\n1..2\nok 2 b\n", []string{"3:plan 1..2 after results"}},
		{"subtest late plan", "KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: s\n    ok 1 a\n    1..1\nok 1 s\n",
			[]string{"6:plan 1..1 after results"}},
		{"plan after a subtest", "KTAP version 1\n    KTAP version 1\n    1..0\nok 1 s\n1..1\n", []string{"5:plan 1..1 after results"}},
		{"second plan", "KTAP version 1\n1..1\n1..1\nok 1 a\n", []string{"3:second plan line"}},
		{"plan count", "KTAP version 1\n1..3\nok 1 a\nok 2 b\n", []string{"2:plan 1..3 but 2 results"}},
		{"malformed plan", "KTAP version 1\n1..01\nok 1 a\n", []string{"2:malformed line \"1..01\": want \"1..1\""}},
		{"plan typo", "KTAP version 1\n1...1\nok 1 a\n", []string{"2:malformed plan line", "1:no plan line"}},
		{"numbering starts at 2", "KTAP version 1\n1..1\nok 2 a\n", []string{"3:test number 2, want 1"}},
		{"numbering gap", "KTAP version 1\n1..3\nok 1 a\nok 3 b\nok 4 c\n", []string{"4:test number 3, want 2"}},
		{"numbering repeat", "KTAP version 1\n1..2\nok 1 a\nok 1 b\n", []string{"4:test number 1, want 2"}},
		{"lowercase directive", "KTAP version 1\n1..1\nok 1 a # skip why\n", []string{"3:directive \"skip\" must be spelled \"SKIP\""}},
		{"mixed-case directive", "KTAP version 1\n1..1\nnot ok 1 a # Todo\n", []string{"3:must be spelled \"TODO\""}},
		{"no space after hash", "KTAP version 1\n1..1\nok 1 a #SKIP\n", []string{"3:want \"ok 1 a # SKIP\""}},
		{"empty directive", "KTAP version 1\n1..1\nok 1 a #\n", []string{"3:want \"ok 1 a\""}},
		{"timeout on ok", "KTAP version 1\n1..1\nok 1 a # TIMEOUT\n", []string{"3:TIMEOUT directive on an \"ok\" line"}},
		{"error on ok", "KTAP version 1\n1..1\nok 1 a # ERROR EIO\n", []string{"3:ERROR directive on an \"ok\" line"}},
		{"uppercase OK", "KTAP version 1\n1..1\nOK 1 a\n", []string{"3:malformed result line", "2:plan 1..1 but 0 results"}},
		{"missing number", "KTAP version 1\n1..1\nok a\n", []string{"3:malformed result line", "2:plan 1..1 but 0 results"}},
		{"not  ok", "KTAP version 1\n1..1\nnot  ok 1 a\n", []string{"3:malformed result line", "2:plan 1..1 but 0 results"}},
		{"double space", "KTAP version 1\n1..1\nok 1  a\n", []string{"3:want \"ok 1 a\""}},
		{"TAP13 dash", "KTAP version 1\n1..1\nok 1 - a\n", []string{"3:want \"ok 1 a\""}},
		{"leading zero", "KTAP version 1\n1..1\nok 01 a\n", []string{"3:want \"ok 1 a\""}},
		{"diag without space", "KTAP version 1\n1..0\n#hi\n", []string{"3:want \"# hi\""}},
		{"carriage return", "KTAP version 1\r\n1..0\n", []string{"1:carriage return"}},
		{"trailing space", "KTAP version 1\n1..0 \n", []string{"2:trailing white space"}},
		{"two-space nesting", "KTAP version 1\n1..1\n  KTAP version 1\n  1..1\n  ok 1 a\nok 1 s\n",
			[]string{"3:indented 2 spaces", "4:indented 2 spaces", "5:indented 2 spaces"}},
		{"nested eight spaces", "KTAP version 1\n1..1\n        KTAP version 1\nok 1 s\n", []string{"3:indented 8 spaces inside a test at 0"}},
		{"subtest without version line", "KTAP version 1\n1..1\n    1..1\n    ok 1 a\nok 1 s\n",
			[]string{"3:a subtest begins with \"KTAP version 1\"", "4:a subtest begins with"}},
		{"subtest without plan", "KTAP version 1\n1..1\n    KTAP version 1\n    ok 1 a\nok 1 s\n", []string{"3:test has no plan line"}},
		{"subtest plan count", "KTAP version 1\n1..1\n    KTAP version 1\n    1..2\n    ok 1 a\nok 1 s\n", []string{"4:plan 1..2 but 1 results"}},
		{"subtest without result", "KTAP version 1\n1..1\n    KTAP version 1\n    1..1\n    ok 1 a\n", []string{"3:subtest \"\" has no result line", "2:plan 1..1 but 0 results"}},
		{"two subtests, one result", "KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: x\n    1..0\n    KTAP version 1\n    # Subtest: y\n    1..0\nok 1 y\n",
			[]string{"3:subtest \"x\" has no result line"}},
		{"subtest name mismatch", "KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: x\n    1..0\nok 1 y\n", []string{"6:result \"y\" closes subtest \"x\""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			probs := Validate(strings.NewReader(tt.in))
			var got []string
			for _, p := range probs {
				got = append(got, p.String())
			}
			if len(probs) != len(tt.want) {
				t.Fatalf("problems:\n%s\nwant %d: %q", strings.Join(got, "\n"), len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				line, msg, _ := strings.Cut(w, ":")
				if !strings.HasPrefix(got[i], "line "+line+": ") || !strings.Contains(got[i], msg) {
					t.Errorf("problem %d = %q, want line %s containing %q", i, got[i], line, msg)
				}
			}
		})
	}
}

func BenchmarkValidate(b *testing.B) {
	var sb strings.Builder
	tree(NewWriter(&sb))
	out := sb.String()
	b.SetBytes(int64(len(out)))
	for b.Loop() {
		if probs := Validate(strings.NewReader(out)); probs != nil {
			b.Fatal(probs)
		}
	}
}

func TestReadErrors(t *testing.T) {
	in := io.MultiReader(strings.NewReader("KTAP version 1\n1..0\n"), iotest.ErrReader(errConsole))
	if _, err := Parse(in); !errors.Is(err, errConsole) {
		t.Errorf("Parse error %v, want %v", err, errConsole)
	}
	in = io.MultiReader(strings.NewReader("KTAP version 1\n1..0\n"), iotest.ErrReader(errConsole))
	if probs := Validate(in); len(probs) != 1 || probs[0].Line != 0 || !strings.Contains(probs[0].Msg, errConsole.Error()) {
		t.Errorf("Validate = %v, want one problem for the read error", probs)
	}
	long := "KTAP version 1\n1..0\n# " + strings.Repeat("x", maxLine) + "\n"
	if probs := Validate(strings.NewReader(long)); len(probs) != 1 || probs[0].Line != 3 || !strings.Contains(probs[0].Msg, "longer than") {
		t.Errorf("Validate(long line) = %v, want one problem on line 3", probs)
	}
}

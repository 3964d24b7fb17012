package ktap

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
)

// walk visits every result of r and its subtests, checking what the parser
// promises of any tree it returns.
func walk(t *testing.T, r *Report) {
	if r == nil {
		t.Fatal("nil report in tree")
	}
	r.Passed()
	for i := range r.Results {
		res := &r.Results[i]
		if res.Line == 0 && (res.OK || res.Sub == nil) {
			t.Fatalf("result %+v without a line is not a failed orphan subtest", res)
		}
		if found := r.Find(res.Description); found == nil || found.Description != res.Description {
			t.Fatalf("Find(%q) = %+v", res.Description, found)
		}
		if res.Sub != nil {
			walk(t, res.Sub)
		}
	}
}

func FuzzParse(f *testing.F) {
	log, err := os.ReadFile("testdata/two-boots.log")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(log)
	f.Add([]byte(treeText))
	f.Add([]byte("TAP version 14\n1..1\n  # Subtest: s\n  ok 1 - x # skip\nok 1 s\n"))
	f.Add([]byte("KTAP version 1\n    KTAP version 1\n    KTAP version 1\n        # Subtest: y\n1..0 # SKIP\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := Parse(bytes.NewReader(in))
		if (r == nil) == (err == nil) {
			t.Fatalf("Parse = %v, %v: want exactly one of report and error", r, err)
		}
		if err != nil && !errors.Is(err, ErrNoKTAP) {
			t.Fatalf("Parse error %v from a bytes.Reader", err)
		}
		if r != nil {
			walk(t, r)
		}
		for _, p := range Validate(bytes.NewReader(in)) {
			if p.Line < 0 || p.Msg == "" {
				t.Fatalf("bad problem %+v", p)
			}
		}
	})
}

// FuzzWriter checks that whatever the descriptions and reasons, the writer's
// output is valid KTAP and reads back to the sanitized text.
func FuzzWriter(f *testing.F) {
	f.Add("hop-0", "preserve", "no kexec\n#2", true)
	f.Add("a#b", "- x\r\ny", "", false)
	f.Add("", "", "ok 1 # TIMEOUT", true)
	f.Add("x", "y", "\v", false)
	f.Fuzz(func(t *testing.T, name, desc, reason string, ok bool) {
		var b strings.Builder
		w := NewWriter(&b)
		w.Header(2)
		sub := w.Subtest(name)
		sub.Result(ok, desc, Skip(reason))
		sub.Result(false, desc, Directive{Kind: DirTimeout, Reason: reason})
		w.Result(false, name, Directive{})
		w.Diag("%s", reason)
		w.Result(ok, desc, Directive{})
		w.Totals()
		if probs := Validate(strings.NewReader(b.String())); probs != nil {
			t.Fatalf("Validate(%q) = %v", b.String(), probs)
		}
		r, err := Parse(strings.NewReader(b.String()))
		if err != nil {
			t.Fatal(err)
		}
		want := Skip(oneLine(reason))
		if got := r.Results[0].Sub.Results[0]; got.Description != Sanitize(desc) || got.Directive != want {
			t.Fatalf("read back %q %+v, want %q %+v", got.Description, got.Directive, Sanitize(desc), want)
		}
		if got := r.Results[0].Sub.Name; got != Sanitize(name) {
			t.Fatalf("subtest name %q, want %q", got, Sanitize(name))
		}
	})
}

package ktap

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// lineRecorder keeps every Write call apart, to check whole-line writes.
type lineRecorder struct{ writes []string }

func (r *lineRecorder) Write(p []byte) (int, error) {
	r.writes = append(r.writes, string(p))
	return len(p), nil
}

// tree prints the output exercised by several tests: subtests, skip, diag.
func tree(w *Writer) {
	w.Header(3)
	w.Diag("kho-sim %s", "v1")
	hop0 := w.Subtest("hop-0")
	hop0.Result(true, "preserve", Directive{})
	hop0.Diag("line one\r\nline two\n")
	hop0.Result(false, "retrieve #1\nfailed", Directive{})
	w.Diag("")
	w.Result(false, "hop-0", Directive{})
	hop1 := w.Subtest("hop #1")
	hop1.Result(true, "finish", Skip("no\nnext kernel"))
	w.Result(true, "hop #1", Directive{})
	w.Result(true, "summary", Directive{Kind: DirXFail, Reason: "known"})
	w.Totals()
}

const treeText = `KTAP version 1
1..3
# kho-sim v1
#
    KTAP version 1
    # Subtest: hop-0
    1..2
    ok 1 preserve
    # line one
    # line two
    not ok 2 retrieve _1 failed
not ok 1 hop-0
    KTAP version 1
    # Subtest: hop _1
    1..1
    ok 1 finish # SKIP no next kernel
ok 2 hop _1
ok 3 summary # XFAIL known
# Totals: pass:1 fail:1 xfail:1 xpass:0 skip:0 error:0
`

func TestWriter(t *testing.T) {
	tests := []struct {
		name  string
		write func(w *Writer)
		want  string
	}{
		{"tree", tree, treeText},
		{"empty plan", func(w *Writer) { w.Header(0) }, "KTAP version 1\n1..0\n"},
		// The plan comes before the results: a subtest is held until
		// its result, and one that never gets it prints nothing.
		{"subtest without its result", func(w *Writer) {
			w.Header(1)
			s := w.Subtest("s")
			s.Result(true, "a", Directive{})
			s.Diag("held")
		}, "KTAP version 1\n1..1\n"},
		{"empty subtest", func(w *Writer) {
			w.Subtest("s")
			w.Result(true, "s", Directive{})
		}, "    KTAP version 1\n    # Subtest: s\n    1..0\nok 1 s\n"},
		{"second subtest drops the first", func(w *Writer) {
			w.Subtest("x").Result(false, "dropped", Directive{})
			w.Subtest("").Result(true, "kept", Directive{})
			w.Result(true, "y", Directive{})
		}, "    KTAP version 1\n    1..1\n    ok 1 kept\nok 1 y\n"},
		{"directives", func(w *Writer) {
			w.Result(false, "t", Directive{Kind: DirTimeout, Reason: "30 seconds"})
			w.Result(false, "e", Directive{Kind: DirError, Reason: "ENOSYS"})
			w.Result(true, "d", Directive{Reason: "rcode=0"})
			w.Result(true, "k", Directive{Kind: "my kind"})
			w.Result(true, "s", Directive{Kind: "skip"})
			w.Totals()
		}, "not ok 1 t # TIMEOUT 30 seconds\nnot ok 2 e # ERROR ENOSYS\nok 3 d # rcode=0\nok 4 k # MY_KIND\nok 5 s # SKIP\n" +
			"# Totals: pass:2 fail:1 xfail:0 xpass:0 skip:1 error:1\n"},
		{"nested twice", func(w *Writer) {
			a := w.Subtest("a")
			a.Diag("before b")
			a.Subtest("b").Result(true, "c", Directive{})
			a.Result(true, "b", Directive{})
			w.Result(true, "a", Directive{})
		}, "    KTAP version 1\n    # Subtest: a\n    1..1\n    # before b\n" +
			"        KTAP version 1\n        # Subtest: b\n        1..1\n        ok 1 c\n    ok 1 b\nok 1 a\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rec lineRecorder
			w := NewWriter(&rec)
			tt.write(w)
			if got := strings.Join(rec.writes, ""); got != tt.want {
				t.Errorf("output:\n%s\nwant:\n%s", got, tt.want)
			}
			for _, s := range rec.writes {
				if strings.Count(s, "\n") != 1 || !strings.HasSuffix(s, "\n") {
					t.Errorf("Write(%q) is not exactly one line", s)
				}
			}
			if err := w.Err(); err != nil {
				t.Errorf("Err() = %v", err)
			}
		})
	}
}

func TestWriterCounts(t *testing.T) {
	w := NewWriter(&bytes.Buffer{})
	for i, n := range []int{
		w.Result(true, "a", Directive{}),
		w.Result(false, "b", Directive{}),
		w.Result(true, "c", Skip("")),
		w.Result(false, "d", Skip("")),
		w.Result(true, "e", Directive{Kind: DirXFail}),
		w.Result(false, "f", Directive{Kind: DirError}),
	} {
		if n != i+1 {
			t.Errorf("result %d got number %d", i+1, n)
		}
	}
	if pass, fail, skip := w.Counts(); pass != 2 || fail != 2 || skip != 2 {
		t.Errorf("Counts() = %d, %d, %d; want 2, 2, 2", pass, fail, skip)
	}
}

var errConsole = errors.New("console gone")

type failingWriter struct{ calls int }

func (f *failingWriter) Write(p []byte) (int, error) {
	f.calls++
	return 0, errConsole
}

func TestWriterErr(t *testing.T) {
	var f failingWriter
	w := NewWriter(&f)
	w.Subtest("sub").Result(true, "x", Directive{})
	w.Result(true, "sub", Directive{})
	if err := w.Err(); !errors.Is(err, errConsole) || !strings.Contains(err.Error(), "KTAP version 1") {
		t.Errorf("Err() = %v, want the first failed line wrapping %v", err, errConsole)
	}
	if f.calls != 5 {
		t.Errorf("%d Write calls, want 5 (writing goes on after an error)", f.calls)
	}
}

func TestSanitize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"a\nb\r\nc", "a b c"},
		{"hop #2", "hop _2"},
		{"  tabs\tand  spaces ", "tabs and spaces"},
		{"- dash", "dash"},
		{"- - two dashes", "two dashes"},
		{"-x", "-x"},
		{"bell\a", "bell"},
		{"\n", ""},
	}
	for _, tt := range tests {
		if got := Sanitize(tt.in); got != tt.want {
			t.Errorf("Sanitize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSetNextResumesNumbering(t *testing.T) {
	var b strings.Builder
	w := NewWriter(&b)
	w.SetNext(3)
	if n := w.Result(true, "boot-3", Directive{}); n != 3 {
		t.Fatalf("number %d, want 3", n)
	}
	if got := b.String(); got != "ok 3 boot-3\n" {
		t.Fatalf("got %q", got)
	}
}

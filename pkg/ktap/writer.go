package ktap

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
)

// Writer prints KTAP version 1. Each line goes out in a single Write call
// ending in "\n": a kernel writing to the same console interleaves whole
// lines, not fragments. A Writer is for use from one goroutine at a time.
type Writer struct {
	out    io.Writer
	indent string
	err    *error // first write error, shared with subtest writers
	next   int    // number of the last result written

	pass, fail, skip, xfail, errs int
}

// NewWriter returns a top-level Writer printing to w.
func NewWriter(w io.Writer) *Writer { return &Writer{out: w, err: new(error)} }

// Err returns the first error from the io.Writer, met by this Writer or by
// one of its subtests. Writing goes on after an error.
func (w *Writer) Err() error { return *w.err }

func (w *Writer) println(s string) {
	if _, err := io.WriteString(w.out, w.indent+s+"\n"); err != nil && *w.err == nil {
		*w.err = fmt.Errorf("ktap: writing %q: %w", s, err)
	}
}

// Header prints the version line and the plan "1..n".
func (w *Writer) Header(n int) {
	w.HeaderNoPlan()
	w.Plan(n)
}

// HeaderNoPlan prints only the version line, for when the number of tests is
// not known yet: call Plan after the last result.
func (w *Writer) HeaderNoPlan() { w.println(versionLine) }

// Plan prints "1..n".
func (w *Writer) Plan(n int) { w.println("1.." + strconv.Itoa(n)) }

// Diag prints a diagnostic message, one "# " line per line of the message.
func (w *Writer) Diag(format string, args ...any) {
	for _, l := range strings.Split(strings.TrimSuffix(fmt.Sprintf(format, args...), "\n"), "\n") {
		w.println(strings.TrimRightFunc("# "+l, unicode.IsSpace))
	}
}

// Result prints the next result line and returns its test number: "ok 1
// desc", "not ok 2 desc", "ok 3 desc # SKIP reason". desc is sanitized (see
// Sanitize), the kind upper-cased and the reason put on one line. With an
// empty Kind, a Reason is diagnostic data: "ok 4 desc # reason".
func (w *Writer) Result(ok bool, desc string, d Directive) int {
	w.next++
	kind := strings.ToUpper(strings.ReplaceAll(Sanitize(d.Kind), " ", "_"))
	w.println(resultLine(ok, w.next, Sanitize(desc), strings.TrimSpace(kind+" "+oneLine(d.Reason))))
	switch {
	case kind == DirSkip:
		w.skip++
	case ok:
		w.pass++
		if kind == DirXFail {
			w.xfail++
		}
	default:
		w.fail++
		if kind == DirError {
			w.errs++
		}
	}
	return w.next
}

// Subtest begins a nested test: it prints "KTAP version 1" and "# Subtest:
// name" four spaces deeper and returns the Writer for the subtest's lines.
// The caller then prints the subtest's own result with w.Result.
func (w *Writer) Subtest(name string) *Writer {
	sub := &Writer{out: w.out, indent: w.indent + strings.Repeat(" ", indentStep), err: w.err}
	sub.HeaderNoPlan()
	if name = Sanitize(name); name != "" {
		sub.println(subtestTag + name)
	}
	return sub
}

// Counts returns how many results this Writer (not its subtests) printed as
// passed (XFAIL included), failed (ERROR and TIMEOUT included) and skipped.
func (w *Writer) Counts() (pass, fail, skip int) { return w.pass, w.fail, w.skip }

// Totals prints kselftest's summary line for this Writer's results.
func (w *Writer) Totals() {
	w.println(fmt.Sprintf("# Totals: pass:%d fail:%d xfail:%d xpass:0 skip:%d error:%d",
		w.pass-w.xfail, w.fail-w.errs, w.xfail, w.skip, w.errs))
}

// Sanitize makes s safe as a test description: control characters (newlines
// included) become spaces, '#' becomes '_' (it would begin a directive),
// runs of white space collapse to one space, and a leading "- " is dropped
// (readers take it for TAP13's separator). Writer applies it to descriptions
// and to subtest names, so that a "# Subtest:" name matches its result line.
func Sanitize(s string) string {
	s = oneLine(strings.ReplaceAll(s, "#", "_"))
	for strings.HasPrefix(s, "- ") {
		s = strings.TrimSpace(s[2:])
	}
	return s
}

// oneLine turns control characters into spaces and collapses white space.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

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
//
// KTAP puts a test's plan right after its version line, and the kernel's
// parser (tools/testing/kunit/kunit.py) counts results against it, so a
// subtest's lines are held until its result is printed: only then is its
// number of results known. A subtest that never gets its result prints
// nothing.
type Writer struct {
	out    io.Writer
	indent string
	err    *error // first write error, shared with subtest writers
	next   int    // number of the last result written

	name string   // of a subtest, from Subtest
	held []string // a subtest's lines, indented, waiting for its result
	sub  *Writer  // the open subtest, printed with the next result

	pass, fail, skip, xfail, errs int
}

// NewWriter returns a top-level Writer printing to w.
func NewWriter(w io.Writer) *Writer { return &Writer{out: w, err: new(error)} }

// Err returns the first error from the io.Writer, met by this Writer or by
// one of its subtests. Writing goes on after an error.
func (w *Writer) Err() error { return *w.err }

func (w *Writer) println(s string) { w.emit(w.indent + s) }

// emit prints one indented line, or holds it while w is an open subtest.
func (w *Writer) emit(s string) {
	if w.held != nil {
		w.held = append(w.held, s)
		return
	}
	if _, err := io.WriteString(w.out, s+"\n"); err != nil && *w.err == nil {
		*w.err = fmt.Errorf("ktap: writing %q: %w", strings.TrimLeft(s, " "), err)
	}
}

// Header prints the version line and the plan "1..n". A top-level Writer
// prints it once, before its first result; a subtest's header is printed
// for it (see Subtest).
func (w *Writer) Header(n int) {
	w.println(versionLine)
	w.println("1.." + strconv.Itoa(n))
}

// Diag prints a diagnostic message, one "# " line per line of the message.
func (w *Writer) Diag(format string, args ...any) {
	for _, l := range strings.Split(strings.TrimSuffix(fmt.Sprintf(format, args...), "\n"), "\n") {
		w.println(strings.TrimRightFunc("# "+l, unicode.IsSpace))
	}
}

// Result prints the next result line and returns its test number: "ok 1
// desc", "not ok 2 desc", "ok 3 desc # SKIP reason". desc is sanitized (see
// Sanitize), the kind upper-cased and the reason put on one line. With an
// empty Kind, a Reason is diagnostic data: "ok 4 desc # reason". An open
// subtest (see Subtest) is printed first: this result closes it.
func (w *Writer) Result(ok bool, desc string, d Directive) int {
	w.flush()
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

// Subtest begins a nested test, four spaces deeper, and returns the Writer
// for its lines. They are held until w's next Result, which closes the
// subtest and should carry the subtest's name as its description (kunit.py
// matches the two): that Result first prints "KTAP version 1", "# Subtest:
// name", the plan "1..n" for the n results the subtest printed, and the
// subtest's lines. A second Subtest before that Result drops the first, and
// lines printed to a subtest after its Result are dropped.
func (w *Writer) Subtest(name string) *Writer {
	w.sub = &Writer{out: w.out, indent: w.indent + strings.Repeat(" ", indentStep), err: w.err,
		name: Sanitize(name), held: []string{}}
	return w.sub
}

// flush prints the open subtest, its plan first.
func (w *Writer) flush() {
	s := w.sub
	if s == nil {
		return
	}
	w.sub = nil
	w.emit(s.indent + versionLine)
	if s.name != "" {
		w.emit(s.indent + subtestTag + s.name)
	}
	w.emit(s.indent + "1.." + strconv.Itoa(s.pass+s.fail+s.skip))
	for _, l := range s.held {
		w.emit(l)
	}
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

// Package kunit runs the kernel's own KTAP parser,
// tools/testing/kunit/kunit.py parse (kunit_parser.py in the kernel tree),
// on kho-sim's output and compares its verdict with kho-sim's own reading
// of the same log (pkg/ktap).
//
// kunit.py comes from Debian's linux-source tarball
// (scripts/kunit/fetch.sh); its path is in $KHO_SIM_KUNIT.
package kunit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kho-sim/kho-sim/internal/readfile"
	"github.com/kho-sim/kho-sim/pkg/ktap"
)

// EnvKunit names the kunit.py to run.
const EnvKunit = "KHO_SIM_KUNIT"

// timeout bounds one kunit.py run: it parses a log in well under a second.
const timeout = time.Minute

// Counts is kunit.py's summary line: "Ran N tests: passed: P, failed: F,
// crashed: C, skipped: S, errors: E". It counts test cases, the results
// without subtests, as kunit_parser.py's TestCounts does.
type Counts struct {
	Passed, Failed, Crashed, Skipped, Errors int
}

func (c Counts) String() string {
	return fmt.Sprintf("Ran %d tests: passed: %d, failed: %d, crashed: %d, skipped: %d, errors: %d",
		c.Passed+c.Failed+c.Crashed+c.Skipped, c.Passed, c.Failed, c.Crashed, c.Skipped, c.Errors)
}

// summaryRE matches kunit.py's last line, after its "[hh:mm:ss] " stamp.
var summaryRE = regexp.MustCompile(`Testing complete\. Ran ([0-9]+) tests:((?: [a-z]+: [0-9]+,?)*)`)

// Path returns $KHO_SIM_KUNIT, checked to be a readable file.
func Path() (string, error) {
	p := os.Getenv(EnvKunit)
	if p == "" {
		return "", fmt.Errorf("kunit: $%s is not set (scripts/kunit/fetch.sh prints a path for it)", EnvKunit)
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("kunit: $%s: %w", EnvKunit, err)
	}
	return p, nil
}

// Require returns Path, or skips the test when kunit.py is not available;
// it fails the test instead when the environment demands the tools
// (KHO_SIM_TOOLS=required, set in CI).
func Require(t testing.TB) string {
	t.Helper()
	p, err := Path()
	if err == nil {
		_, err = exec.LookPath("python3")
	}
	if err != nil {
		if os.Getenv("KHO_SIM_TOOLS") == "required" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return p
}

// Parse runs "python3 kunit.py parse LOG" and returns its summary and its
// whole output. kunit.py exits 1 when tests failed: that is a result here,
// not an error.
func Parse(kunitPy, log string) (Counts, string, error) {
	log, err := filepath.Abs(log) // kunit.py changes into the kernel tree
	if err != nil {
		return Counts{}, "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "python3", kunitPy, "parse", log)
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) {
		return Counts{}, out.String(), fmt.Errorf("kunit: %s parse %s: %w\n%s", kunitPy, log, err, out.String())
	}
	c, err := ParseSummary(out.String())
	return c, out.String(), err
}

// ParseSummary reads the counts from kunit.py's output.
func ParseSummary(out string) (Counts, error) {
	m := summaryRE.FindAllStringSubmatch(out, -1)
	if m == nil {
		return Counts{}, fmt.Errorf("kunit: no %q line in kunit.py's output", "Testing complete. Ran N tests")
	}
	last := m[len(m)-1]
	var c Counts
	fields := map[string]*int{"passed": &c.Passed, "failed": &c.Failed, "crashed": &c.Crashed, "skipped": &c.Skipped, "errors": &c.Errors}
	for _, kv := range strings.Split(strings.TrimSpace(last[2]), ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		name, num, _ := strings.Cut(kv, ": ")
		p, ok := fields[name]
		if !ok {
			return Counts{}, fmt.Errorf("kunit: unknown count %q in %q", name, last[0])
		}
		*p, _ = strconv.Atoi(num) // the pattern allows digits only
	}
	if ran, _ := strconv.Atoi(last[1]); ran != c.Passed+c.Failed+c.Crashed+c.Skipped {
		return Counts{}, fmt.Errorf("kunit: %q: the counts do not add up", last[0])
	}
	return c, nil
}

// Expect returns what kunit.py must report for a log that kho-sim read as
// rep: every result without a subtest is a test case, passed ("ok", XFAIL
// included), failed ("not ok") or skipped (SKIP); a result with a subtest
// counts its subtest's cases, plus one failure when it is "not ok" while its
// cases all passed; a subtest that never got its result line, or a planned
// result that never came, crashed.
func Expect(rep *ktap.Report) Counts {
	var c Counts
	for _, res := range rep.Results {
		c = add(c, expectResult(res))
	}
	if missing := rep.Plan - len(rep.Results); missing > 0 {
		c.Crashed += missing
	}
	return c
}

func expectResult(res ktap.Result) Counts {
	switch {
	case res.Number == 0:
		return Counts{Crashed: 1}
	case res.Sub != nil && (len(res.Sub.Results) > 0 || res.Sub.Plan > 0):
		c := Expect(res.Sub)
		if !res.OK && res.Directive.Kind != ktap.DirSkip && c.Failed == 0 && c.Crashed == 0 && c.Passed > 0 {
			c.Failed++
		}
		return c
	case res.Directive.Kind == ktap.DirSkip:
		return Counts{Skipped: 1}
	case res.OK:
		return Counts{Passed: 1}
	}
	return Counts{Failed: 1}
}

func add(a, b Counts) Counts {
	return Counts{a.Passed + b.Passed, a.Failed + b.Failed, a.Crashed + b.Crashed, a.Skipped + b.Skipped, a.Errors + b.Errors}
}

// Check runs kunit.py on log and compares it with kho-sim's reading of the
// same log: kunit.py must find no errors and no crashed tests, and the same
// passed, failed and skipped test cases. It returns kunit.py's counts.
func Check(kunitPy, log string) (Counts, error) {
	got, out, err := Parse(kunitPy, log)
	if err != nil {
		return got, err
	}
	rep, err := readfile.Parse(log, ktap.Parse)
	if err != nil {
		return got, fmt.Errorf("kunit: %w", err)
	}
	if err := Compare(got, Expect(rep)); err != nil {
		return got, fmt.Errorf("kunit: %s: %w\n%s", log, err, out)
	}
	return got, nil
}

// Compare checks kunit.py's counts against what kho-sim's reading expects
// (Expect): no errors, no crashed tests, the same passed, failed and
// skipped test cases.
func Compare(got, want Counts) error {
	var probs []string
	if got.Errors != 0 || got.Crashed != 0 {
		probs = append(probs, fmt.Sprintf("kunit.py found %d errors and %d crashed tests", got.Errors, got.Crashed))
	}
	if got.Passed != want.Passed || got.Failed != want.Failed || got.Skipped != want.Skipped {
		probs = append(probs, fmt.Sprintf("kunit.py counts passed %d, failed %d, skipped %d; kho-sim reads passed %d, failed %d, skipped %d",
			got.Passed, got.Failed, got.Skipped, want.Passed, want.Failed, want.Skipped))
	}
	if probs != nil {
		return errors.New(strings.Join(probs, "; "))
	}
	return nil
}

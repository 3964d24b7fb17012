// Command ktapverdict judges the KTAP in a kho-sim serial console log: it
// prints every boot's verdict and phase timings and exits 0 only if the whole
// chain passed.
//
// Usage: ktapverdict [-boots N] LOG   (LOG "-" reads stdin)
//
//	ktapverdict -kunit KUNIT_PY LOG...
//
// With -kunit it judges nothing itself: it runs the kernel's own KTAP
// parser (tools/testing/kunit/kunit.py parse) on each LOG and checks that
// kunit.py finds no errors and no crashed tests and counts the same passed,
// failed and skipped test cases as kho-sim reads, whether the run passed or
// failed by design.
//
// Exit status: 0 pass (or kunit.py agrees), 1 fail, 2 usage or read error.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/kho-sim/kho-sim/e2e"
	"github.com/kho-sim/kho-sim/internal/kunit"
	"github.com/kho-sim/kho-sim/pkg/ktap"
)

func main() {
	boots := flag.Int("boots", 0, "number of boots the run must report (0: as planned by the log)")
	kunitPy := flag.String("kunit", "", "check each LOG with this kunit.py instead (see the package doc)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: ktapverdict [-boots N] LOG\n       ktapverdict -kunit KUNIT_PY LOG...")
		flag.PrintDefaults()
	}
	flag.Parse()
	switch {
	case *kunitPy != "" && flag.NArg() > 0:
		os.Exit(runKunit(*kunitPy, flag.Args(), os.Stdout))
	case *kunitPy != "" || flag.NArg() != 1:
		flag.Usage()
		os.Exit(2)
	}
	os.Exit(run(flag.Arg(0), *boots, os.Stdout))
}

// runKunit checks every log with kunit.py and prints one line per log.
func runKunit(kunitPy string, logs []string, out io.Writer) int {
	code := 0
	for _, l := range logs {
		c, err := kunit.Check(kunitPy, l)
		if err != nil {
			fmt.Fprintf(out, "FAIL %s: %v\n", l, err)
			code = 1
			continue
		}
		fmt.Fprintf(out, "ok %s: kunit.py: %s, as kho-sim reads it\n", l, c)
	}
	return code
}

func run(path string, boots int, out io.Writer) int {
	in := os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "ktapverdict: %v\n", err)
			return 2
		}
		defer f.Close()
		in = f
	}
	rep, err := ktap.Parse(in)
	if err != nil {
		fmt.Fprintf(out, "FAIL: %s: %v\n", path, err)
		return 1
	}
	v := e2e.Judge(rep, boots)
	if err := v.WriteSummary(out); err != nil {
		fmt.Fprintf(os.Stderr, "ktapverdict: %v\n", err)
		return 2
	}
	if !v.Passed() {
		return 1
	}
	return 0
}

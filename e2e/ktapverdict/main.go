// Command ktapverdict judges the KTAP in a kho-sim serial console log: it
// prints every boot's verdict and phase timings and exits 0 only if the whole
// chain passed.
//
// Usage: ktapverdict [-boots N] LOG   (LOG "-" reads stdin)
//
// Exit status: 0 pass, 1 fail, 2 usage or read error.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/kho-sim/kho-sim/e2e"
	"github.com/kho-sim/kho-sim/pkg/ktap"
)

func main() {
	boots := flag.Int("boots", 0, "number of boots the run must report (0: as planned by the log)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: ktapverdict [-boots N] LOG")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	os.Exit(run(flag.Arg(0), *boots, os.Stdout))
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

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/kho-sim/kho-sim/internal/readfile"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// errUsage marks a command line mistake.
var errUsage = errors.New("usage: phases [-wall S,S,...] [-machine TEXT] LOG...")

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("phases", flag.ContinueOnError)
	fs.SetOutput(stderr)
	wall := fs.String("wall", "", "wall time of each run in seconds, comma separated")
	machine := fs.String("machine", "", "where the figures come from, printed under the table")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, errUsage)
		return 2
	}
	walls, err := parseWalls(*wall)
	if err != nil {
		fmt.Fprintf(stderr, "phases: -wall: %v\n", err)
		return 2
	}
	s := Samples{}
	var hops []Hop
	boots, passed := 0, 0
	for _, path := range fs.Args() {
		bs, err := readLog(path)
		if err != nil {
			fmt.Fprintf(stderr, "phases: %v\n", err)
			return 2
		}
		s.Add(bs)
		hops = append(hops, Hops(bs)...)
		for _, b := range bs {
			boots++
			if b.OK {
				passed++
			}
		}
	}
	if len(s) == 0 {
		fmt.Fprintln(stderr, "phases: no phase timings of a passing boot in the logs")
		return 1
	}
	if err := s.WriteTable(stdout); err != nil {
		fmt.Fprintf(stderr, "phases: %v\n", err)
		return 2
	}
	fmt.Fprintf(stdout, "\n%d runs, %d of %d boots passed", fs.NArg(), passed, boots)
	if w := Summarize(walls); w.N > 0 {
		fmt.Fprintf(stdout, "; wall time of a whole run: median %.1f s (%.1f-%.1f s, n=%d)", w.Median.Seconds(), w.Min.Seconds(), w.Max.Seconds(), w.N)
	}
	fmt.Fprintln(stdout, ".")
	for _, p := range []string{phaseLoad, phaseBlackout, phaseHop} {
		if r, ok := s.Ratio(p); ok {
			fmt.Fprintf(stdout, "%s: kho-sim / kexec-tools = %.2f (medians).\n", p, r)
		}
	}
	fmt.Fprintln(stdout)
	if err := WriteShare(stdout, hops); err != nil {
		fmt.Fprintf(stderr, "phases: %v\n", err)
		return 2
	}
	if *machine != "" {
		fmt.Fprintf(stdout, "Machine: %s\n", *machine)
	}
	return 0
}

func readLog(path string) ([]Boot, error) { return readfile.Parse(path, ParseLog) }

func parseWalls(list string) ([]time.Duration, error) {
	var out []time.Duration
	for _, f := range strings.Split(list, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		s, err := strconv.ParseFloat(f, 64)
		if err != nil || s < 0 || s > 1e6 {
			return nil, fmt.Errorf("%q: want seconds", f)
		}
		out = append(out, time.Duration(s*float64(time.Second)))
	}
	return out, nil
}

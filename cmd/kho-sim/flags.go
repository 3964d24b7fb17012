package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/kho-sim/kho-sim/internal/cmdline"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// The readers of every command's flags and kho_sim.* parameters: one
// place says what an address, a count or a region is.

// newFlags makes a FlagSet that returns errors instead of exiting.
func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: kho-sim %s\n\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses and rejects stray arguments.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

// flagSet reports whether the command line gave the flag.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// parseAddress is every command's reader of a physical address (a flag or
// a kho_sim.* parameter, named by what): decimal or 0x-prefixed, not zero.
func parseAddress(what, v string) (uint64, error) {
	pa, err := strconv.ParseUint(v, 0, 64)
	if err != nil || pa == 0 {
		return 0, usageError{fmt.Sprintf("%s %q: want a non-zero physical address such as 0x10000000", what, v)}
	}
	return pa, nil
}

// parseCount reads a whole number from lo to hi (a flag or a kho_sim.*
// parameter, named by what).
func parseCount(what, v string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, usageError{fmt.Sprintf("%s %q: want a whole number from %d to %d", what, v, lo, hi)}
	}
	return n, nil
}

// parseRanges reads a comma-separated list of SIZE@ADDR ranges; "" is
// none.
func parseRanges(what, v string) ([]physmem.Range, error) {
	if v == "" {
		return nil, nil
	}
	var out []physmem.Range
	for _, f := range strings.Split(v, ",") {
		r, err := physmem.ParseRegion(strings.TrimSpace(f))
		if err != nil {
			return nil, usageError{fmt.Sprintf("%s: %v", what, err)}
		}
		out = append(out, r)
	}
	return out, nil
}

// imageFlags are --image, --base and --size: a file standing in for
// physical memory, its byte 0 at physical address --base.
type imageFlags struct{ image, base, size *string }

func addImageFlags(fs *flag.FlagSet, imageUsage, sizeDefault, sizeUsage string) imageFlags {
	return imageFlags{
		image: fs.String("image", "", imageUsage),
		base:  fs.String("base", "0x10000000", "physical address of the image file's first byte (page aligned)"),
		size:  fs.String("size", sizeDefault, sizeUsage),
	}
}

// regionFlags validates --base and --size.
func regionFlags(base, size string) (physmem.Range, error) {
	b, err := physmem.ParseSize(base)
	if err != nil {
		return physmem.Range{}, usageError{fmt.Sprintf("--base: %v", err)}
	}
	s, err := physmem.ParseSize(size)
	if err != nil {
		return physmem.Range{}, usageError{fmt.Sprintf("--size: %v", err)}
	}
	if b%physmem.PageSize != 0 || s%physmem.PageSize != 0 || s == 0 {
		return physmem.Range{}, usageError{fmt.Sprintf("--base %#x and --size %#x must be page aligned (4096) and the size non-zero", b, s)}
	}
	if s < 1<<20 {
		return physmem.Range{}, usageError{fmt.Sprintf("--size %#x: kho-sim needs at least 1 MiB", s)}
	}
	return physmem.Range{Start: b, Size: s}, nil
}

// cmdlineParams returns the kernel parameters of a command line by name
// ('-' read as '_'), up to "--" (what follows belongs to init), quoted
// values whole, the last instance winning, as the kernel reads them.
func cmdlineParams(line string) map[string]string {
	return cmdline.Values(line)
}

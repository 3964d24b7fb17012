package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/pkg/inspect"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// runInspect prints a handover of any generation (7.0, luo-v2, 7.2): from
// /dev/mem (the region and root of this boot, or given) or from a raw
// memory image, such as kho-sim sim writes or a real kernel's memory saved
// to a file whose byte 0 is physical address --base. The region must cover
// every page the handover's memory map preserves. --json prints
// pkg/inspect's JSON document (schema in that package's comment: go doc
// github.com/kho-sim/kho-sim/pkg/inspect). Exit status 0 when the handover
// is valid, 1 when it has findings (everything is still printed) or cannot
// be read at all (one line on stderr). An image without --root is scanned
// for KHO root FDTs and the one valid handover shown (see inspect.PickRoot).
func runInspect(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("inspect", "inspect [--region SIZE@ADDR] [--root ADDR] [--json] | inspect --image FILE [--base ADDR] [--size SIZE] [--root ADDR] [--json]", stderr)
	im := addImageFlags(fs, "read this raw memory image (as kho-sim sim writes it, or a real kernel's memory saved to a file) instead of /dev/mem; never written",
		"", "with --image: region size (default: the file's size)")
	region := fs.String("region", "", "reserved region SIZE@ADDR to read through /dev/mem (default: the memmap=SIZE$ADDR on the command line)")
	root := fs.String("root", "", "KHO root FDT address (default: "+paramFDT+"= on the command line; with --image: the one valid KHO root found in the image)")
	asJSON := fs.Bool("json", false, "print a JSON document instead of text")
	cmdlineFile := fs.String("cmdline-file", "/proc/cmdline", "where to read the kernel command line")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	var r *physmem.Region
	var rootPA uint64
	var err error
	if *im.image != "" {
		if set["region"] {
			return usageError{"--region reads /dev/mem; with --image use --base and --size"}
		}
		if *root != "" {
			if rootPA, err = parseAddress("--root", *root); err != nil {
				return err
			}
		}
		var done func()
		r, done, err = openImageReadOnly(*im.image, *im.base, *im.size)
		if err != nil {
			return err
		}
		defer done()
	} else {
		if set["base"] || set["size"] {
			return usageError{"--base and --size describe an --image file"}
		}
		var rg physmem.Range
		rg, rootPA, err = devMemHandover(*region, *root, *cmdlineFile)
		if err != nil {
			return err
		}
		if r, err = physmem.OpenDevMem(physmem.DevMemSpec{Range: rg}); err != nil {
			return err
		}
		defer r.Close()
	}

	var rep *inspect.Report
	if rootPA == 0 {
		// An image without --root: find the handover in it.
		c, err := inspect.PickRoot(inspect.FindRoots(r))
		if err != nil {
			return fmt.Errorf("image %s: %w", *im.image, err)
		}
		fmt.Fprintf(stderr, "inspect: KHO root FDT found at %#x (%s=%#x)\n", c.PA, paramFDT, c.PA)
		rep = c.Report
	} else {
		rep = inspect.Decode(r, rootPA)
	}
	if err := rep.RootError(); err != nil {
		return err
	}
	if *asJSON {
		err = inspect.WriteJSON(stdout, rep)
	} else {
		err = inspect.WriteText(stdout, rep)
	}
	if err != nil {
		return err
	}
	if len(rep.Findings) > 0 {
		return errFailed
	}
	return nil
}

// devMemHandover finds the region and root address of this boot's
// handover: flags first, then memmap= and kho_sim.fdt= on the command line.
func devMemHandover(region, root, cmdlineFile string) (physmem.Range, uint64, error) {
	var rg physmem.Range
	var cmdline string
	if region == "" || root == "" {
		raw, err := os.ReadFile(cmdlineFile)
		if err != nil {
			return rg, 0, fmt.Errorf("read the kernel command line: %w", err)
		}
		cmdline = strings.TrimSpace(string(raw))
	}
	if region != "" {
		var err error
		if rg, err = physmem.ParseRegion(region); err != nil {
			return rg, 0, usageError{fmt.Sprintf("--region: %v", err)}
		}
	} else {
		var found bool
		var err error
		rg, found, err = physmem.MemmapFromCmdline(cmdline)
		if err != nil {
			return rg, 0, usageError{fmt.Sprintf("memmap= on the command line: %v", err)}
		}
		if !found {
			return rg, 0, usageError{"no region: the command line has no memmap=SIZE$ADDR; pass --region SIZE@ADDR, or --image FILE for an image file"}
		}
	}
	if root != "" {
		pa, err := parseAddress("--root", root)
		return rg, pa, err
	}
	v, ok := cmdlineParams(cmdline)[paramFDT]
	if !ok {
		return rg, 0, usageError{"no handover address: the command line has no " + paramFDT + "= (this boot was not kexec'd by kho-sim); pass --root ADDR"}
	}
	pa, err := parseAddress(paramFDT+"=", v)
	return rg, pa, err
}

// openImageReadOnly maps an image file privately: the file is opened
// read-only and never changes, whatever happens to the mapping.
func openImageReadOnly(path, base, size string) (*physmem.Region, func(), error) {
	b, err := physmem.ParseSize(base)
	if err != nil {
		return nil, nil, usageError{fmt.Sprintf("--base: %v", err)}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("image: %w", err)
	}
	defer f.Close() // the mapping outlives the descriptor
	st, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("image: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("image %s is not a regular file (%v)", path, st.Mode().Type())
	}
	n := uint64(st.Size())
	if size != "" {
		s, err := physmem.ParseSize(size)
		if err != nil {
			return nil, nil, usageError{fmt.Sprintf("--size: %v", err)}
		}
		if s > n {
			return nil, nil, usageError{fmt.Sprintf("--size %#x: image %s has only %d bytes", s, path, n)}
		}
		n = s
	}
	if n == 0 || n%physmem.PageSize != 0 || b%physmem.PageSize != 0 {
		return nil, nil, usageError{fmt.Sprintf("image %s: base %#x and size %#x must be page aligned (4096) and the size non-zero; pass --size", path, b, n)}
	}
	if n > 1<<40 {
		return nil, nil, usageError{fmt.Sprintf("image %s: %d bytes is more than kho-sim maps; pass --size", path, n)}
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(n), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
	if err != nil {
		return nil, nil, fmt.Errorf("image: mmap(%s, %d bytes, private): %w", path, n, err)
	}
	r, err := physmem.New(b, mem)
	if err != nil {
		_ = unix.Munmap(mem) // just mapped, nothing else uses it
		return nil, nil, usageError{fmt.Sprintf("image %s at --base %#x: %v", path, b, err)}
	}
	return r, func() { _ = unix.Munmap(mem) }, nil
}

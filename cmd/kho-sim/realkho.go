package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/kho-sim/kho-sim/internal/sim"
	"github.com/kho-sim/kho-sim/internal/timing"
	"github.com/kho-sim/kho-sim/pkg/kexec"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// The real-KHO mode: the next kernel is a real KHO kernel (Linux 7.2 and
// later), which reads the handover from a SETUP_KEXEC_KHO setup_data entry,
// so kho-sim loads it with kexec_load(2) (pkg/kexec.LoadKHO) instead of
// kexec_file_load.
const (
	paramRealKHO = "kho_sim.real_kho" // 1: the next kernel is a real KHO kernel
	paramScratch = "kho_sim.scratch"  // SIZE@ADDR[,SIZE@ADDR...]: its scratch areas
)

// realKHOFlags are the mode's flags; region is set by run once resolved.
type realKHOFlags struct {
	on      bool
	scratch string
	region  physmem.Range
}

func (r *realKHOFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&r.on, "real-kho", false, "the next kernel is a real KHO kernel: load it with kexec_load and hand the handover over in setup_data (default: "+paramRealKHO+"=1 on the command line)")
	fs.StringVar(&r.scratch, "kho-scratch", "", fmt.Sprintf("with --real-kho: the next kernel's scratch areas SIZE@ADDR[,SIZE@ADDR...] (default: %s=, else %d MiB of RAM from %#x, more if the kernel needs it)",
		paramScratch, kexec.DefaultScratchSize>>20, kexec.DefaultScratchAddr))
}

// enabled reports whether this boot loads a real KHO kernel.
func (r *realKHOFlags) enabled(cmdline string) bool {
	return r.on || cmdlineParams(cmdline)[paramRealKHO] == "1"
}

// scratchAreas parses the flag, else the parameter; nil means the default.
func (r *realKHOFlags) scratchAreas(cmdline string) ([]physmem.Range, error) {
	v, from := r.scratch, "--kho-scratch"
	if v == "" {
		v, from = cmdlineParams(cmdline)[paramScratch], paramScratch
	}
	return parseRanges(from, v)
}

// realKHOCmdline is the KHO kernel's command line: KHO and LUO on, no
// memmap= (the handover's pages must be RAM to it; it reserves them from the
// radix tree), the region by kho_sim.region=, and kho_sim.consumer=1: the
// kho-sim after it retrieves its files through /dev/liveupdate.
func realKHOCmdline(cmdline string, next sim.Handover, region physmem.Range) (string, error) {
	set := map[string]string{
		"kho": "on", "liveupdate": "on", paramConsumer: "1",
		paramBoot:   fmt.Sprint(next.Boot),
		paramRegion: fmt.Sprintf("%#x@%#x", region.Size, region.Start),
	}
	return kexec.RewriteCmdline(cmdline, set, []string{"memmap", paramFDT})
}

// check refuses a bad set-up before anything is written, when this boot
// will load a real KHO kernel: the whole layout with the scratch areas and
// the next kernel's header (kexec.PlanKHO), after the preflight checks
// (checkKexecLoad) passed. Each problem is one line.
func (r *realKHOFlags) check(moreBoots bool, kernel, cmdline string) error {
	if !moreBoots || !r.enabled(cmdline) {
		return nil
	}
	scratch, err := r.scratchAreas(cmdline)
	if err != nil {
		return err
	}
	if _, err := kexec.PlanKHO(kexec.KHOLoadOptions{Kernel: kernel, Scratch: scratch, Reserved: []physmem.Range{r.region}}); err != nil {
		return fmt.Errorf("--real-kho: %w", err)
	}
	return nil
}

// load loads the real KHO kernel with the handover next, from the
// initramfs initrd. Bad scratch or a next kernel that is not a bzImage is
// one line and nothing is loaded.
func (r *realKHOFlags) load(kernel string, initrd *os.File, cmdline string, next sim.Handover) ([]timing.Phase, error) {
	if next.RootPA == 0 {
		return nil, fmt.Errorf("--real-kho: no handover to give the next kernel")
	}
	scratch, err := r.scratchAreas(cmdline)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	nextCmdline, err := realKHOCmdline(cmdline, next, r.region)
	if err != nil {
		return nil, err
	}
	layout, took, err := kexec.LoadKHO(kexec.KHOLoadOptions{
		Kernel:   kernel,
		Initrd:   initrd,
		Cmdline:  nextCmdline,
		FDT:      physmem.Range{Start: next.RootPA, Size: physmem.PageSize},
		Scratch:  scratch,
		Reserved: []physmem.Range{r.region},
	})
	phases := []timing.Phase{{Name: "kexec_load (KHO setup_data)", D: took}, {Name: "kexec_load layout", D: time.Since(t0) - took}}
	if err != nil {
		return phases, err
	}
	fmt.Fprintf(os.Stderr, "kho-sim: real KHO kernel loaded: %s\n", layout)
	return phases, nil
}

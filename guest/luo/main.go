// Command luo is a static guest program that exercises a real Linux 7.2
// kernel's live update and prints what that kernel hands over.
//
// As /init (PID 1) of a minimal initramfs it runs one of two stages:
//
//	stage 1 (no luo_stage=2 on the command line): create sessions and memfds
//	  with known content through /dev/liveupdate, preserve them, then
//	  kexec_file_load the same kernel and initramfs with luo_stage=2
//	  appended and reboot(LINUX_REBOOT_CMD_KEXEC) into it.
//	stage 2: find the KHO root FDT through setup_data, read every page the
//	  handover references through /dev/mem and print it (pkg/kho's dump
//	  format), then retrieve the sessions and files, check the memfds'
//	  content, finish the sessions and print TEST PASSED or TEST FAILED.
//
// With luo_incoming=dump on the first command line, stage 2 boots with
// kho=off liveupdate=off instead: the kernel still reserves every preserved
// page but LUO never consumes (and frees) its blob, so the whole handover
// is still in memory when /init runs. Stage 2 then only dumps, and passes
// when everything decodes; there is nothing to retrieve with LUO off.
//
// Either way it ends by resetting the machine (the kernel has no ACPI, so a
// power-off would only halt; QEMU's -no-reboot turns the reset into an exit).
//
// Run anywhere else it packs the initramfs:
//
//	luo pack -kernel bzImage -o initramfs.cpio [-init luo]
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/kho-sim/kho-sim/guest/internal/pid1"
	kcmdline "github.com/kho-sim/kho-sim/internal/cmdline"
)

// stageParam is the command line parameter that tells stage 2 from stage 1
// (luo_stage=2).
const stageParam = "luo_stage"

func main() {
	if os.Getpid() != 1 {
		if err := hostMain(os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "luo:", err)
			os.Exit(1)
		}
		return
	}
	g := &guest{start: time.Now()}
	err := g.run()
	if err != nil {
		g.logf("TEST FAILED: %v", err)
	}
	g.reset()
}

func hostMain(args []string) error {
	if len(args) == 0 || args[0] != "pack" {
		return errors.New("usage: luo pack -kernel BZIMAGE -o OUT.cpio [-init BINARY] (as PID 1 it runs the guest)")
	}
	fs := flag.NewFlagSet("pack", flag.ContinueOnError)
	kernel := fs.String("kernel", "", "bzImage to ship as /bzImage")
	out := fs.String("o", "", "initramfs to write")
	initBin := fs.String("init", "", "program to ship as /init (default: this executable)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *kernel == "" || *out == "" || fs.NArg() != 0 {
		return errors.New("pack: -kernel and -o are required")
	}
	if *initBin == "" {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("pack: find this executable: %w", err)
		}
		*initBin = self
	}
	initData, err := os.ReadFile(*initBin)
	if err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	kernelData, err := os.ReadFile(*kernel)
	if err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	f, err := os.Create(*out)
	if err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	if err := writeInitramfs(f, initData, kernelData, nil); err != nil {
		f.Close()
		return fmt.Errorf("pack %s: %w", *out, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	return nil
}

// guest is the state of one boot.
type guest struct {
	start   time.Time
	stage   int
	cmdline string
	// dumpOnly: this stage 2 runs with LUO off and only dumps.
	dumpOnly bool
}

// logf prints one console line tagged with the stage.
func (g *guest) logf(format string, args ...any) {
	fmt.Printf("LUO-GUEST stage=%d: %s\n", g.stage, fmt.Sprintf(format, args...))
}

// mark prints a timing line: the kernel's uptime (time since this kernel
// started) and the time since /init started.
func (g *guest) mark(event string) {
	fmt.Printf("LUO-TIME stage=%d event=%s uptime=%s init=%.3f\n", g.stage, event, pid1.Uptime(), time.Since(g.start).Seconds())
}

func (g *guest) run() error {
	if err := pid1.Mount(true); err != nil {
		return err
	}
	cmdline, err := pid1.Cmdline()
	if err != nil {
		return err
	}
	g.cmdline = cmdline
	g.stage = 1
	params := kcmdline.Parse(g.cmdline)
	if v, _ := params.Lookup(stageParam); v == "2" {
		g.stage = 2
	}
	if v, _ := params.Lookup("kho"); v == "off" {
		g.dumpOnly = true
	}
	g.mark("init")
	g.logf("kernel command line: %s", g.cmdline)
	if g.stage == 1 {
		return g.stage1()
	}
	return g.stage2()
}

// reset ends the boot: the last timing line, then a machine reset.
func (g *guest) reset() {
	g.mark("end")
	pid1.Reset(g.logf)
}

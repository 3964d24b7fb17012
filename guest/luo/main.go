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
	"flag"

	"github.com/kho-sim/kho-sim/guest/internal/pid1"
	kcmdline "github.com/kho-sim/kho-sim/internal/cmdline"
)

// stageParam is the command line parameter that tells stage 2 from stage 1
// (luo_stage=2).
const stageParam = "luo_stage"

func main() {
	pid1.Program{
		Name:       "luo",
		Tag:        "LUO-GUEST",
		TimeTag:    "LUO-TIME",
		StageParam: stageParam,
		Debugfs:    true,
		Failed:     "TEST FAILED",
		Pack:       hostMain,
		Boot:       boot,
	}.Main()
}

func hostMain(args []string) error {
	var initBin *string
	kernel, out, err := pid1.PackFlags(args, "usage: luo pack -kernel BZIMAGE -o OUT.cpio [-init BINARY] (as PID 1 it runs the guest)", func(fs *flag.FlagSet) {
		initBin = fs.String("init", "", "program to ship as /init (default: this executable)")
	})
	if err != nil {
		return err
	}
	return pid1.Pack(out, pid1.Source{Name: initPath, Path: *initBin, Mode: initMode}, pid1.Source{Name: kernelPath, Path: kernel, Mode: dataMode})
}

// guest is the state of one boot.
type guest struct {
	*pid1.Console
	// dumpOnly: this stage 2 runs with LUO off and only dumps.
	dumpOnly bool
	// kernel is what stage 1 kexecs: /bzImage of its own initramfs, or
	// -kernel's when another program handed it the machine ("luo boot
	// -kernel PATH", as kho-sim's kho_sim.then does after its consumer
	// boot in a real KHO kernel).
	kernel string
}

func boot(c *pid1.Console, params kcmdline.Line) error {
	g := &guest{Console: c, kernel: "/" + kernelPath}
	fs := flag.NewFlagSet("boot", flag.ContinueOnError)
	fs.StringVar(&g.kernel, "kernel", g.kernel, "the kernel stage 1 kexecs into")
	if err := fs.Parse(c.Args); err != nil {
		return err
	}
	if v, _ := params.Lookup("kho"); v == "off" {
		g.dumpOnly = true
	}
	g.Mark("init")
	g.Logf("kernel command line: %s", g.Cmdline)
	if g.Stage == 1 {
		return g.stage1()
	}
	return g.stage2()
}

// Command selftest runs the kernel's own LUO selftest, luo_kexec_simple,
// across a real kexec, as /init (PID 1) of a minimal initramfs.
//
// The selftest expects a running system and an operator: "--stage 1"
// preserves a state session and a test session, forks a child that keeps
// their fds open and exits; the operator then kexecs (the selftests'
// do_kexec.sh: kexec -l -s --reuse-cmdline, kexec -e); after the reboot
// "--stage 2" retrieves, verifies and finishes both sessions and prints
// "SIMPLE KEXEC TEST PASSED". This /init is that operator:
//
//	boot 1 (no luo_stage=2 on the command line): run --stage 1, then
//	  kexec_file_load this kernel with this root file system (repacked into a
//	  memfd) and the command line plus luo_stage=2, and reboot into it;
//	boot 2: run --stage 2 and print TEST PASSED if it exited 0.
//
// Either way it ends by resetting the machine (QEMU's -no-reboot turns the
// reset into an exit). Lines it prints start with LUO-SELFTEST; timing
// lines with LUO-SELFTEST-TIME, with the kernel's uptime.
//
// Run anywhere else it packs the initramfs:
//
//	selftest pack -kernel bzImage -selftest luo_kexec_simple -o initramfs.cpio
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/kho-sim/kho-sim/guest/internal/pid1"
	kcmdline "github.com/kho-sim/kho-sim/internal/cmdline"
	"github.com/kho-sim/kho-sim/pkg/kexec"
)

// Paths inside the initramfs.
const (
	initPath     = "init"
	kernelPath   = "bzImage"
	selftestPath = "luo_kexec_simple"
	stageParam   = "luo_stage" // luo_stage=2 marks boot 2
)

func main() {
	pid1.Program{
		Name:       "selftest",
		Tag:        "LUO-SELFTEST",
		TimeTag:    "LUO-SELFTEST-TIME",
		StageParam: stageParam,
		Failed:     "TEST FAILED",
		Pack:       pack,
		Boot:       boot,
	}.Main()
}

func pack(args []string) error {
	if len(args) == 0 || args[0] != "pack" {
		return errors.New("usage: selftest pack [-kernel BZIMAGE -selftest BINARY] [-hop NAME=BZIMAGE,SELFTEST ...] -o OUT.cpio (as PID 1 it runs the selftest)")
	}
	fs := flag.NewFlagSet("pack", flag.ContinueOnError)
	kernel := fs.String("kernel", "", "bzImage to ship as /bzImage")
	selftest := fs.String("selftest", "", "static luo_kexec_simple to ship")
	out := fs.String("o", "", "initramfs to write")
	var hops []hopSpec
	fs.Func("hop", "NAME=BZIMAGE,SELFTEST: ship /kernel-NAME and /luo_kexec_simple-NAME for luo_kernel=/luo_next= (repeatable)", func(s string) error {
		h, err := parseHopSpec(s)
		hops = append(hops, h)
		return err
	})
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if (*kernel == "") != (*selftest == "") || (*kernel == "" && len(hops) == 0) || *out == "" || fs.NArg() != 0 {
		return errors.New("pack: -o and -kernel with -selftest, or -hop, or both, are required")
	}
	sources := []pid1.Source{{Name: initPath, Mode: 0o755}}
	if *kernel != "" {
		sources = append(sources, pid1.Source{Name: kernelPath, Path: *kernel, Mode: 0o755}, pid1.Source{Name: selftestPath, Path: *selftest, Mode: 0o755})
	}
	more, err := hopSources(hops)
	if err != nil {
		return err
	}
	return pid1.Pack(*out, append(sources, more...)...)
}

// rootFiles are the files of the initramfs, all executable: this program
// as /init, the kernel it kexecs and the selftest.
var rootFiles = [...]string{initPath, kernelPath, selftestPath}

// guest is the state of one boot.
type guest struct {
	*pid1.Console
	hop hopPlan
}

func boot(c *pid1.Console, line kcmdline.Line) error {
	g := guest{Console: c}
	g.Mark("init")
	var err error
	if g.hop, err = parseHopPlan(line); err != nil {
		return err
	}
	g.logHop()
	if err := g.selftest(); err != nil {
		return err
	}
	if g.Stage == 2 {
		g.Logf("TEST PASSED")
		if len(g.hop.next) > 0 {
			return g.hopOn()
		}
		return nil
	}
	if g.hop.active() {
		return g.kexecHop()
	}
	return g.kexec()
}

// selftest runs luo_kexec_simple -s N on the console and waits for it.
// In stage 1 it returns once the selftest's parent exits; the forked child
// keeps the sessions open until the kexec.
func (g guest) selftest() error {
	// -s, not --stage: 7.3's lu_utils.c parses with getopt("s:") only.
	cmd := exec.Command(g.selftestBinary(), "-s", fmt.Sprint(g.Stage))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	t := time.Now()
	err := cmd.Run()
	g.Mark("selftest-done")
	if err != nil {
		return fmt.Errorf("%s -s %d: %w", g.selftestBinary(), g.Stage, err)
	}
	g.Logf("%s -s %d exited 0 after %.3f s", g.selftestBinary(), g.Stage, time.Since(t).Seconds())
	return nil
}

// kexec loads the same kernel and root file system with luo_stage=2
// appended and reboots into it.
func (g guest) kexec() error {
	files, err := pid1.ReadFiles(func(string) uint64 { return 0o755 }, rootFiles[:]...)
	if err != nil {
		return err
	}
	initrd, err := pid1.MemfdInitramfs(files...)
	if err != nil {
		return err
	}
	cmdline, err := kexec.RewriteCmdline(g.Cmdline, map[string]string{stageParam: "2"}, nil)
	if err != nil {
		return err
	}
	if err := kexec.FileLoad(kexec.LoadOptions{Kernel: "/" + kernelPath, Initrd: initrd, Cmdline: cmdline}); err != nil {
		return err
	}
	g.Mark("reboot-kexec")
	return pid1.RebootKexec()
}

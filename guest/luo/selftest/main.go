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
//
// or, for hops between kernels (hop.go), with -hop NAME=BZIMAGE,SELFTEST
// once per kernel.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/guest/internal/pid1"
)

// Paths inside the initramfs.
const (
	initPath     = "init"
	kernelPath   = "bzImage"
	selftestPath = "luo_kexec_simple"
	stage2Arg    = "luo_stage=2"
)

func main() {
	if os.Getpid() != 1 {
		if err := pack(os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "selftest:", err)
			os.Exit(1)
		}
		return
	}
	g := &guest{start: time.Now(), stage: 1}
	if err := g.run(); err != nil {
		g.logf("TEST FAILED: %v", err)
	}
	g.reset()
}

func pack(args []string) error {
	if len(args) == 0 || args[0] != "pack" {
		return errors.New("usage: selftest pack -kernel BZIMAGE -selftest BINARY -o OUT.cpio (as PID 1 it runs the selftest)")
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
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("pack: find this executable: %w", err)
	}
	shipped := []struct{ name, path string }{{initPath, self}}
	if *kernel != "" {
		shipped = append(shipped, struct{ name, path string }{kernelPath, *kernel}, struct{ name, path string }{selftestPath, *selftest})
	}
	var files []pid1.File
	for _, f := range shipped {
		data, err := os.ReadFile(f.path)
		if err != nil {
			return fmt.Errorf("pack: %w", err)
		}
		files = append(files, pid1.File{Name: f.name, Data: data, Mode: 0o755})
	}
	more, err := hopFiles(hops)
	if err != nil {
		return err
	}
	files = append(files, more...)
	archive, err := os.Create(*out)
	if err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	if err := pid1.WriteInitramfs(archive, files...); err != nil {
		archive.Close()
		return fmt.Errorf("pack %s: %w", *out, err)
	}
	if err := archive.Close(); err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	return nil
}

// rootFiles are the files of the initramfs, all executable: this program
// as /init, the kernel it kexecs and the selftest.
var rootFiles = [...]string{initPath, kernelPath, selftestPath}

// guest is the state of one boot.
type guest struct {
	start   time.Time
	stage   int
	cmdline string
	hop     hopPlan
}

func (g *guest) logf(format string, args ...any) {
	fmt.Printf("LUO-SELFTEST stage=%d: %s\n", g.stage, fmt.Sprintf(format, args...))
}

// mark prints a timing line: the kernel's uptime and the time since /init
// started.
func (g *guest) mark(event string) {
	fmt.Printf("LUO-SELFTEST-TIME stage=%d event=%s uptime=%s init=%.3f\n", g.stage, event, pid1.Uptime(), time.Since(g.start).Seconds())
}

func (g *guest) run() error {
	if err := pid1.Mount(false); err != nil {
		return err
	}
	cmdline, err := pid1.Cmdline()
	if err != nil {
		return err
	}
	g.cmdline = cmdline
	for _, f := range strings.Fields(g.cmdline) {
		if f == stage2Arg {
			g.stage = 2
		}
	}
	g.mark("init")
	if g.hop, err = parseHopPlan(g.cmdline); err != nil {
		return err
	}
	g.logHop()
	if err := g.selftest(); err != nil {
		return err
	}
	if g.stage == 2 {
		g.logf("TEST PASSED")
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

// selftest runs luo_kexec_simple --stage N on the console and waits for it.
// In stage 1 it returns once the selftest's parent exits; the forked child
// keeps the sessions open until the kexec.
func (g *guest) selftest() error {
	// -s, not --stage: 7.3's lu_utils.c parses with getopt("s:") only.
	cmd := exec.Command(g.selftestBinary(), "-s", fmt.Sprint(g.stage))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	t := time.Now()
	err := cmd.Run()
	g.mark("selftest-done")
	if err != nil {
		return fmt.Errorf("%s -s %d: %w", g.selftestBinary(), g.stage, err)
	}
	g.logf("%s -s %d exited 0 after %.3f s", g.selftestBinary(), g.stage, time.Since(t).Seconds())
	return nil
}

// kexec loads the same kernel and root file system with luo_stage=2
// appended and reboots into it.
func (g *guest) kexec() error {
	files, err := pid1.ReadFiles(func(string) uint64 { return 0o755 }, rootFiles[:]...)
	if err != nil {
		return err
	}
	initrd, err := pid1.MemfdInitramfs(files...)
	if err != nil {
		return err
	}
	kernel, err := os.Open("/" + kernelPath)
	if err != nil {
		return fmt.Errorf("open kernel: %w", err)
	}
	cmdline := g.cmdline + " " + stage2Arg
	if err := unix.KexecFileLoad(int(kernel.Fd()), int(initrd.Fd()), cmdline, 0); err != nil {
		return fmt.Errorf("kexec_file_load(%q): %w", cmdline, err)
	}
	g.mark("reboot-kexec")
	return pid1.RebootKexec()
}

// reset ends the boot: the last timing line, then a machine reset.
func (g *guest) reset() {
	g.mark("end")
	pid1.Reset(g.logf)
}

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
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *kernel == "" || *selftest == "" || *out == "" || fs.NArg() != 0 {
		return errors.New("pack: -kernel, -selftest and -o are required")
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("pack: find this executable: %w", err)
	}
	var files []pid1.File
	for _, f := range []struct{ name, path string }{{initPath, self}, {kernelPath, *kernel}, {selftestPath, *selftest}} {
		data, err := os.ReadFile(f.path)
		if err != nil {
			return fmt.Errorf("pack: %w", err)
		}
		files = append(files, pid1.File{Name: f.name, Data: data, Mode: 0o755})
	}
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
	if v, _ := kcmdline.Parse(g.cmdline).Lookup(stageParam); v == "2" {
		g.stage = 2
	}
	g.mark("init")
	if err := g.selftest(); err != nil {
		return err
	}
	if g.stage == 2 {
		g.logf("TEST PASSED")
		return nil
	}
	return g.kexec()
}

// selftest runs luo_kexec_simple --stage N on the console and waits for it.
// In stage 1 it returns once the selftest's parent exits; the forked child
// keeps the sessions open until the kexec.
func (g *guest) selftest() error {
	cmd := exec.Command("/"+selftestPath, "--stage", fmt.Sprint(g.stage))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	t := time.Now()
	err := cmd.Run()
	g.mark("selftest-done")
	if err != nil {
		return fmt.Errorf("%s --stage %d: %w", selftestPath, g.stage, err)
	}
	g.logf("%s --stage %d exited 0 after %.3f s", selftestPath, g.stage, time.Since(t).Seconds())
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
	cmdline, err := kexec.RewriteCmdline(g.cmdline, map[string]string{stageParam: "2"}, nil)
	if err != nil {
		return err
	}
	if err := kexec.FileLoad(kexec.LoadOptions{Kernel: "/" + kernelPath, Initrd: initrd, Cmdline: cmdline}); err != nil {
		return err
	}
	g.mark("reboot-kexec")
	return pid1.RebootKexec()
}

// reset ends the boot: the last timing line, then a machine reset.
func (g *guest) reset() {
	g.mark("end")
	pid1.Reset(g.logf)
}

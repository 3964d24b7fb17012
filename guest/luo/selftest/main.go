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
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/u-root/u-root/pkg/cpio"
	"golang.org/x/sys/unix"
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
	files := map[string][]byte{}
	for name, path := range map[string]string{initPath: self, kernelPath: *kernel, selftestPath: *selftest} {
		if files[name], err = os.ReadFile(path); err != nil {
			return fmt.Errorf("pack: %w", err)
		}
	}
	f, err := os.Create(*out)
	if err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	if err := writeInitramfs(f, files); err != nil {
		f.Close()
		return fmt.Errorf("pack %s: %w", *out, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	return nil
}

// writeInitramfs writes the root file system as a newc cpio without
// timestamps: files (init, bzImage, luo_kexec_simple), /dev/console (the
// kernel opens it for init's stdio before anything is mounted) and the
// mount points. The host builds the first initramfs with it and the guest
// the second, so both boots run the same bytes.
func writeInitramfs(w io.Writer, files map[string][]byte) error {
	cw := cpio.Newc.Writer(w)
	recs := []cpio.Record{
		cpio.Directory("dev", 0o755),
		cpio.CharDev("dev/console", 0o600, 5, 1),
		cpio.Directory("proc", 0o555),
		cpio.Directory("sys", 0o555),
		cpio.Directory("tmp", 0o1777),
	}
	for _, name := range []string{initPath, kernelPath, selftestPath} {
		data, ok := files[name]
		if !ok {
			return fmt.Errorf("write initramfs: no /%s", name)
		}
		recs = append(recs, cpio.StaticRecord(data, cpio.Info{Name: name, Mode: cpio.S_IFREG | 0o755}))
	}
	if err := cpio.WriteRecords(cw, recs); err != nil {
		return fmt.Errorf("write initramfs: %w", err)
	}
	if err := cpio.WriteTrailer(cw); err != nil {
		return fmt.Errorf("write initramfs trailer: %w", err)
	}
	return nil
}

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
	up := "?"
	if b, err := os.ReadFile("/proc/uptime"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			up = f[0]
		}
	}
	fmt.Printf("LUO-SELFTEST-TIME stage=%d event=%s uptime=%s init=%.3f\n", g.stage, event, up, time.Since(g.start).Seconds())
}

func (g *guest) run() error {
	for _, m := range []struct{ src, dir, fstype string }{
		{"proc", "/proc", "proc"},
		{"sysfs", "/sys", "sysfs"},
		{"devtmpfs", "/dev", "devtmpfs"},
	} {
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			return fmt.Errorf("mkdir %s: %w", m.dir, err)
		}
		if err := unix.Mount(m.src, m.dir, m.fstype, 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount -t %s %s %s: %w", m.fstype, m.src, m.dir, err)
		}
	}
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return fmt.Errorf("read /proc/cmdline: %w", err)
	}
	g.cmdline = strings.TrimSpace(string(b))
	for _, f := range strings.Fields(g.cmdline) {
		if f == stage2Arg {
			g.stage = 2
		}
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
	files := map[string][]byte{}
	for _, name := range []string{initPath, kernelPath, selftestPath} {
		data, err := os.ReadFile("/" + name)
		if err != nil {
			return fmt.Errorf("repack: %w", err)
		}
		files[name] = data
	}
	var buf bytes.Buffer
	if err := writeInitramfs(&buf, files); err != nil {
		return err
	}
	fd, err := unix.MemfdCreate("initramfs", 0)
	if err != nil {
		return fmt.Errorf("repack: memfd_create: %w", err)
	}
	initrd := os.NewFile(uintptr(fd), "initramfs-memfd")
	if _, err := initrd.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("repack: %w", err)
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
	unix.Sync()
	time.Sleep(200 * time.Millisecond) // let the console drain
	err = unix.Reboot(unix.LINUX_REBOOT_CMD_KEXEC)
	return fmt.Errorf("reboot(LINUX_REBOOT_CMD_KEXEC): %w", err)
}

// reset flushes the console and resets the machine.
func (g *guest) reset() {
	g.mark("end")
	unix.Sync()
	time.Sleep(300 * time.Millisecond) // the 8250 drains by interrupt
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART); err != nil {
		g.logf("reboot(RESTART): %v", err)
	}
	for {
		time.Sleep(time.Hour)
	}
}

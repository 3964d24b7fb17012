package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/pkg/kexec"
	"github.com/kho-sim/kho-sim/pkg/ktap"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// ksftSkip is kselftest's KSFT_SKIP: the exit status of a preflight that
// found something ruling a run out.
const ksftSkip = 4

// Initramfs estimate: kho-sim run packs the running root filesystem into a
// memfd and kexec_file_load copies it into the kernel, so the rootfs is in
// memory twice more. The rootfs is estimated as the regular files directly
// in /kernels (symlinks such as /kernels/next are not followed, so no image
// counts twice) plus rootfsRest for u-root, kho-sim and the rest (a u-root
// initramfs is about 16 MiB uncompressed).
const (
	rootfsRest      = 32 << 20
	initramfsCopies = 2
)

// preflightEnv is the machine preflight looks at: root holds proc/, sys/,
// dev/mem and kernels/ ("/" on a real machine; --sysroot, a fake tree in tests).
type preflightEnv struct {
	root string
	// probe calls KEXEC_FILE_UNLOAD to learn whether kexec_file_load
	// exists; nil when it must not run (root is not this machine's).
	probe func() error
}

// preflightPlan is what a run asks of the machine, and so which checks
// apply: the same checks serve kho-sim preflight and run.
type preflightPlan struct {
	// region is the reserved region; nil: the memmap= in proc/cmdline.
	region *physmem.Range
	// regionFrom says where region came from ("--region", ...).
	regionFrom string
	// kexec is true when the run will load a kernel: the kexec checks
	// (lockdown's kexec half aside) apply only then.
	kexec      bool
	nextKernel string
	// loader is loaderKhoSim or loaderKexecTools, which adds its check.
	loader string
	// realKHO: the next kernel is a real KHO kernel loaded by kexec_load,
	// which adds its check.
	realKHO bool
}

// preflightCheck is the outcome of one preflight check.
type preflightCheck struct {
	name string
	// skip says why the check rules a run out and what to fix; "" when
	// the check passed.
	skip string
	// note is diagnostic data for a passed check.
	note string
	// consequence marks a skip that only follows from an earlier one.
	consequence bool
}

// runPreflight prints one KTAP result per check and exits with
// KSFT_SKIP (4) when any check rules a run out.
func runPreflight(args []string, stdout, stderr io.Writer) error {
	code, err := preflightStatus(args, stdout, stderr, kexec.Unload)
	if err != nil {
		return err
	}
	if code != 0 {
		return exitStatus(code)
	}
	return nil
}

// preflightStatus parses the flags, runs the checks and returns the exit
// status: 0 when a run can go ahead, ksftSkip when something rules it out.
func preflightStatus(args []string, stdout, stderr io.Writer, probe func() error) (int, error) {
	flags := newFlags("preflight", "preflight [--region SIZE@ADDR] [--next-kernel PATH] [--loader NAME] [--real-kho] [--sysroot DIR]", stderr)
	region := flags.String("region", "", "reserved region SIZE@ADDR (default: the memmap=SIZE$ADDR on the command line)")
	next := flags.String("next-kernel", "/kernels/next", "kernel image kho-sim run would kexec into")
	loader := flags.String("loader", loaderKhoSim, "loader kho-sim run would use: "+loaderKhoSim+" or "+loaderKexecTools)
	realKHO := flags.Bool("real-kho", false, "check what kho-sim run --real-kho needs: kexec_load allowed and a next kernel it can boot")
	sysroot := flags.String("sysroot", "/", "look at proc/, sys/, dev/mem, kernels/ and --next-kernel under DIR instead of / (kexec_file_load is then not probed)")
	if err := parseFlags(flags, args); err != nil {
		return 0, err
	}
	plan := preflightPlan{kexec: true, nextKernel: *next, realKHO: *realKHO}
	if *region != "" {
		r, err := physmem.ParseRegion(*region)
		if err != nil {
			return 0, usageError{fmt.Sprintf("--region: %v", err)}
		}
		plan.region, plan.regionFrom = &r, "--region"
	}
	var err error
	if plan.loader, err = chooseLoader(*loader, nil, 1); err != nil {
		return 0, err
	}
	env := preflightEnv{root: *sysroot}
	if filepath.Clean(*sysroot) == "/" {
		env.probe = probe
	}
	checks := env.checks(plan)
	if err := writePreflight(stdout, checks); err != nil {
		return 0, err
	}
	return preflightExit(checks), nil
}

// preflightExit is the exit status for the checks' outcome.
func preflightExit(checks []preflightCheck) int {
	for _, c := range checks {
		if c.skip != "" {
			return ksftSkip
		}
	}
	return 0
}

// writePreflight prints the checks as KTAP, then a line that says what to
// fix first, then kselftest's totals.
func writePreflight(out io.Writer, checks []preflightCheck) error {
	w := ktap.NewWriter(out)
	w.Header(len(checks))
	var causes []string
	for _, c := range checks {
		switch {
		case c.skip != "":
			w.Result(true, c.name, ktap.Skip(c.skip))
			if !c.consequence {
				causes = append(causes, c.name)
			}
		default:
			w.Result(true, c.name, ktap.Directive{Reason: c.note})
		}
	}
	if len(causes) == 0 {
		w.Diag("kho-sim preflight: nothing rules a run out")
	} else {
		w.Diag("kho-sim preflight: a run is ruled out; fix %s (the SKIP reasons say how)", strings.Join(causes, ", "))
	}
	w.Totals()
	return w.Err()
}

// path returns an absolute path as seen under the env's root.
func (e preflightEnv) path(p string) string { return filepath.Join(e.root, p) }

// ruleOut runs the checks plan needs, as kho-sim run does before it maps
// the region, and returns an error naming each check that rules the run
// out and what to fix; nil when nothing does.
func (e preflightEnv) ruleOut(plan preflightPlan) error {
	var why []string
	for _, c := range e.checks(plan) {
		if c.skip != "" && !c.consequence {
			why = append(why, c.name+": "+c.skip)
		}
	}
	if len(why) == 0 {
		return nil
	}
	return fmt.Errorf("preflight rules the run out:\n  %s", strings.Join(why, "\n  "))
}

// checks runs every check plan needs, in order; later checks that need an
// earlier one's result skip as its consequence.
func (e preflightEnv) checks(plan preflightPlan) []preflightCheck {
	rc, rg := e.checkRegion(plan.region, plan.regionFrom)
	iomem := e.checkReserved(rg)
	out := []preflightCheck{rc, iomem, e.checkDevMem(rg, iomem.skip == "")}
	p, err := kexec.ReadPreflight(e.root)
	if !plan.kexec {
		// Lockdown forbids /dev/mem as well as unsigned kexecs.
		if err == nil {
			out = append(out, checkLockdown(p, e.path(lockdownFile)))
		}
		return out
	}
	if err != nil {
		why := fmt.Sprintf("cannot read the kexec state: %v: mount /proc and /sys", err)
		out = append(out,
			preflightCheck{name: "kernel lockdown off", skip: why},
			preflightCheck{name: "kexec loads permitted", skip: "not checked: the kexec state is unreadable (see above)", consequence: true},
			preflightCheck{name: "kexec_file_load supported", skip: "not checked: the kexec state is unreadable (see above)", consequence: true})
	} else {
		out = append(out, checkLockdown(p, e.path(lockdownFile)), checkPermitted(p), e.checkKexecFile(p))
	}
	out = append(out, e.checkKernel(plan.nextKernel), e.checkMemory())
	if plan.loader == loaderKexecTools {
		out = append(out, e.checkKexecTools())
	}
	if plan.realKHO {
		out = append(out, e.checkKexecLoad(plan.nextKernel))
	}
	return out
}

// checkKexecLoad asks pkg/kexec what stops a kexec_load(2) of a real KHO
// kernel: a load refused on this machine (sysctls, lockdown, which
// refuses kexec_load outright) or a next kernel whose setup header that
// path cannot boot.
func (e preflightEnv) checkKexecLoad(next string) preflightCheck {
	c := preflightCheck{name: "kexec_load of a KHO kernel possible"}
	problems, err := kexec.KHOLoadPreflight(e.root, e.path(next))
	switch {
	case err != nil:
		c.skip = fmt.Sprintf("cannot read the kexec state: %v: mount /proc and /sys", err)
	case len(problems) > 0:
		c.skip = strings.Join(problems, "; ")
	default:
		c.note = "kexec_load allowed; " + next + " is a bzImage it can boot"
	}
	return c
}

const lockdownFile = "/sys/kernel/security/lockdown"

func (e preflightEnv) checkRegion(given *physmem.Range, from string) (preflightCheck, *physmem.Range) {
	c := preflightCheck{name: "region reserved by memmap="}
	rg := given
	if rg != nil {
		c.note = fmt.Sprintf("region %v from %s", *rg, from)
	} else {
		raw, err := os.ReadFile(e.path("/proc/cmdline"))
		if err != nil {
			c.skip = fmt.Sprintf("cannot read the kernel command line: %v: mount /proc", err)
			return c, nil
		}
		r, found, err := physmem.MemmapFromCmdline(strings.TrimSpace(string(raw)))
		switch {
		case err != nil:
			c.skip = fmt.Sprintf("%v: write it as memmap=16M$0x10000000", err)
			return c, nil
		case !found:
			c.skip = "no memmap=SIZE$ADDR on the kernel command line: boot with memmap=16M$0x10000000 " +
				"(quote the $ in bootloader configs and QEMU -append), or pass --region SIZE@ADDR of a range /proc/iomem shows as Reserved"
			return c, nil
		}
		rg = &r
		c.note = fmt.Sprintf("region %v from %s on the command line", r, physmem.MemmapArg(r))
	}
	if rg.Start%physmem.PageSize != 0 || rg.Size%physmem.PageSize != 0 || rg.Size < 1<<20 {
		c.skip = fmt.Sprintf("region %v: kho-sim needs at least 1 MiB, page aligned: use memmap=16M$0x10000000", *rg)
		return c, nil
	}
	return c, rg
}

func (e preflightEnv) checkReserved(rg *physmem.Range) preflightCheck {
	c := preflightCheck{name: "region reserved in /proc/iomem"}
	if rg == nil {
		c.skip, c.consequence = "not checked: no usable region (see above)", true
		return c
	}
	entries, err := physmem.ReadIOMem(e.path("/proc/iomem"))
	if errors.Is(err, fs.ErrNotExist) {
		c.skip = fmt.Sprintf("cannot read the memory map: %v: mount /proc", err)
		return c
	}
	if err == nil {
		err = physmem.CheckReserved(entries, *rg)
	}
	if err != nil {
		c.skip = err.Error()
	}
	return c
}

// checkDevMem maps the region through /dev/mem and unmaps it again; it
// never touches the memory.
func (e preflightEnv) checkDevMem(rg *physmem.Range, reserved bool) preflightCheck {
	c := preflightCheck{name: "/dev/mem maps the region"}
	if rg == nil || !reserved {
		c.skip, c.consequence = "not tried: the region is not reserved memory (see above)", true
		return c
	}
	r, err := physmem.OpenDevMem(physmem.DevMemSpec{
		Range: *rg, DevMem: e.path("/dev/mem"), IOMem: e.path("/proc/iomem"), Lockdown: e.path(lockdownFile),
	})
	if err != nil {
		c.skip = err.Error()
		return c
	}
	if err := r.Close(); err != nil {
		c.skip = fmt.Sprintf("unmap /dev/mem: %v", err)
	}
	return c
}

func checkLockdown(p kexec.Preflight, path string) preflightCheck {
	c := preflightCheck{name: "kernel lockdown off"}
	switch p.Lockdown {
	case "none":
	case "":
		c.note = "lockdown state unknown: no " + path + " (securityfs not mounted, or no lockdown LSM)"
	default:
		c.skip = fmt.Sprintf("kernel lockdown is in %s mode: it forbids /dev/mem, and kexec_file_load takes only signed kernels; "+
			"boot with Secure Boot off and without lockdown= on the command line (lockdown cannot be lifted at run time)", p.Lockdown)
	}
	return c
}

func checkPermitted(p kexec.Preflight) preflightCheck {
	c := preflightCheck{name: "kexec loads permitted"}
	if problems := p.Problems(); len(problems) > 0 {
		c.skip = strings.Join(problems, "; ")
	}
	c.note = strings.Join(p.Warnings(), "; ")
	return c
}

// checkKexecFile learns whether kexec_file_load exists by unloading: with
// nothing loaded, KEXEC_FILE_UNLOAD does nothing. An image already loaded
// is left alone: the call would drop it.
func (e preflightEnv) checkKexecFile(p kexec.Preflight) preflightCheck {
	c := preflightCheck{name: "kexec_file_load supported"}
	switch {
	case e.probe == nil:
		c.note = "not probed: --sysroot is not this machine"
		return c
	case p.KexecLoaded:
		c.note = "not probed: a kexec image is loaded and probing would unload it"
		return c
	}
	err := e.probe()
	switch {
	case err == nil:
	case errors.Is(err, unix.ENOSYS):
		c.skip = "the running kernel has no kexec_file_load (ENOSYS): boot a kernel built with CONFIG_KEXEC_FILE=y (Debian's are), " +
			"not inside a container whose seccomp filter blocks the call"
	case errors.Is(err, errors.ErrUnsupported):
		c.skip = "kexec is only supported on Linux"
	case errors.Is(err, unix.EPERM):
		c.skip = "kexec_file_load refused (EPERM): run as root in the initial user namespace, with kexec loads permitted (see above)"
	default:
		c.note = fmt.Sprintf("the system call exists (KEXEC_FILE_UNLOAD returned %v)", err)
	}
	return c
}

func (e preflightEnv) checkKernel(next string) preflightCheck {
	c := preflightCheck{name: "next kernel image loadable"}
	path := e.path(next)
	err := kexec.CheckKernelImage(path)
	switch {
	case err == nil:
		if st, err := os.Stat(path); err == nil {
			c.note = fmt.Sprintf("%s: %d bytes", next, st.Size())
		}
	case errors.Is(err, fs.ErrNotExist):
		c.skip = fmt.Sprintf("%v: put the kernel to kexec into at %s or pass --next-kernel PATH (kho-sim's initramfs carries it at /kernels/next)", err, next)
	case errors.Is(err, kexec.ErrUnloadableImage):
		c.skip = fmt.Sprintf("%v: pass --next-kernel PATH of a relocatable 64-bit bzImage (a vmlinuz)", err)
	default:
		c.skip = fmt.Sprintf("%v: make %s a readable kernel image", err, next)
	}
	return c
}

// checkKexecTools looks for the kexec binary the kexec-tools loader runs.
func (e preflightEnv) checkKexecTools() preflightCheck {
	c := preflightCheck{name: "kexec-tools installed"}
	st, err := os.Stat(e.path(kexec.KexecToolsPath))
	switch {
	case err != nil:
		c.skip = fmt.Sprintf("%v: ship Debian's kexec-tools at %s (initramfs/build.sh does) or use the %s loader", err, kexec.KexecToolsPath, loaderKhoSim)
	case !st.Mode().IsRegular() || st.Mode()&0o111 == 0:
		c.skip = fmt.Sprintf("%s is not an executable file (mode %v): reinstall kexec-tools", kexec.KexecToolsPath, st.Mode())
	default:
		c.note = kexec.KexecToolsPath
	}
	return c
}

// checkMemory compares MemAvailable with what the next initramfs needs
// (see initramfsCopies and rootfsRest).
func (e preflightEnv) checkMemory() preflightCheck {
	c := preflightCheck{name: "memory for the next initramfs"}
	avail, err := memAvailable(e.path("/proc/meminfo"))
	if err != nil {
		c.skip = fmt.Sprintf("%v: mount /proc", err)
		return c
	}
	kernels, err := dirFilesSize(e.path("/kernels"))
	if err != nil {
		c.skip = fmt.Sprintf("%v: make /kernels readable", err)
		return c
	}
	need := initramfsCopies * (kernels + rootfsRest)
	msg := fmt.Sprintf("MemAvailable %d MiB, the next initramfs needs %d MiB (%d x (%d MiB in /kernels + %d MiB for the rest of the rootfs))",
		avail>>20, need>>20, initramfsCopies, kernels>>20, rootfsRest>>20)
	if avail < need {
		c.skip = msg + ": give the machine more memory (QEMU -m 1G)"
	} else {
		c.note = msg
	}
	return c
}

// memAvailable reads MemAvailable from a /proc/meminfo file, in bytes.
func memAvailable(path string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("cannot read free memory: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "MemAvailable:")
		if !ok {
			continue
		}
		kb, ok := strings.CutSuffix(strings.TrimSpace(v), " kB")
		n, err := strconv.ParseUint(strings.TrimSpace(kb), 10, 64)
		if !ok || err != nil || n > 1<<53 {
			return 0, fmt.Errorf("%s: malformed MemAvailable line %q", path, sc.Text())
		}
		return n << 10, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	return 0, fmt.Errorf("%s has no MemAvailable line (a kernel before 3.14?)", path)
}

// dirFilesSize adds up the regular files directly in dir; a missing dir
// holds nothing.
func dirFilesSize(dir string) (uint64, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("list %s: %w", dir, err)
	}
	var sum uint64
	for _, d := range entries {
		if !d.Type().IsRegular() {
			continue
		}
		info, err := d.Info()
		if err != nil {
			return 0, fmt.Errorf("stat %s: %w", filepath.Join(dir, d.Name()), err)
		}
		sum += uint64(info.Size())
	}
	return sum, nil
}

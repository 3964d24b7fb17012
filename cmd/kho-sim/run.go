package main

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/internal/sim"
	"github.com/kho-sim/kho-sim/internal/timing"
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/kexec"
	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// The kernel command line parameters kho-sim reads and writes. They ride on
// the command line because a stock kernel ignores KHO's setup_data.
const (
	paramFDT      = "kho_sim.fdt"      // KHO root FDT address, set by the previous boot
	paramBoot     = "kho_sim.boot"     // this boot's number, set by the previous boot
	paramScenario = "kho_sim.scenario" // scenario name
	paramHops     = "kho_sim.hops"     // kexec hops in the run
	paramFix      = "kho_sim.fix"      // 1: finish-before-retrieve fixed
	paramStay     = "kho_sim.stay"     // 1: do not power off at the end
	paramCorrupt  = "kho_sim.corrupt"  // KIND[@BOOT]: damage the handover that boot writes
	paramKernels  = "kho_sim.kernels"  // comma-separated kernels that boots 1, 2, ... kexec into, in turn
	paramRegion   = "kho_sim.region"   // SIZE@ADDR, instead of the memmap= on the command line
	paramDryRun   = "kho_sim.dry_run"  // 1: as --dry-run
	paramLoader   = "kho_sim.loader"   // kho-sim or kexec-tools: what loads the next kernel and reboots into it
	paramLoaders  = "kho_sim.loaders"  // comma-separated loaders that boots 1, 2, ... use, in turn
	paramABI      = "kho_sim.abi"      // handover generation (7.0, luo-v2, 7.2), or a comma-separated list boots 1, 2, ... use in turn
)

// The loaders of the next kernel. Both load the same repacked initramfs with
// the same command line; only the kexec phases differ.
const (
	loaderKhoSim     = "kho-sim"     // kexec.FileLoader: kexec_file_load(2) and reboot(2) from this process
	loaderKexecTools = "kexec-tools" // kexec.KexecTools: Debian's kexec -s -l, then kexec -e: the baseline
)

// loaderNamed is the kexec.Loader a loader name (see chooseLoader) stands for.
func loaderNamed(name string) kexec.Loader {
	if name == loaderKexecTools {
		return kexec.KexecTools{}
	}
	return kexec.FileLoader{}
}

// initramfsMarker is shipped by kho-sim's own initramfs; together with being
// started by PID 1 it tells kho-sim it owns the machine it would reboot.
const initramfsMarker = "/etc/kho-sim/initramfs"

type runFlags struct {
	scenario, region, nextKernel, cmdlineFile string
	loader, abi                               string
	hops                                      int
	fix, stay, dryRun, allowKexec             bool
	realKHO                                   realKHOFlags
	// liveupdate is LUO's device for a consumer boot ("": the real one);
	// tests point it elsewhere.
	liveupdate string
}

func runRun(args []string, stdout, stderr io.Writer) error {
	start := time.Now()
	bootToStart := timing.SinceBoot()
	fs := newFlags("run", "run [--scenario NAME|FILE] [--hops N] [--region SIZE@ADDR] [--next-kernel PATH] [--dry-run] [--allow-kexec] [--stay]", stderr)
	var f runFlags
	fs.StringVar(&f.scenario, "scenario", "", "scenario (default: "+paramScenario+"= on the command line, else default)")
	fs.IntVar(&f.hops, "hops", -1, "kexec hops in the run (default: "+paramHops+"= on the command line, else 2)")
	fs.StringVar(&f.region, "region", "", "reserved region SIZE@ADDR (default: "+paramRegion+"= or the memmap=SIZE$ADDR on the command line)")
	fs.StringVar(&f.nextKernel, "next-kernel", "/kernels/next", "kernel image to kexec into")
	fs.StringVar(&f.loader, "loader", "", "what loads and boots the next kernel: "+loaderKhoSim+" or "+loaderKexecTools+" (default: "+paramLoaders+"= or "+paramLoader+"= on the command line, else "+loaderKhoSim+")")
	fs.StringVar(&f.cmdlineFile, "cmdline-file", "/proc/cmdline", "where to read the kernel command line")
	fs.StringVar(&f.abi, "abi", "", "handover generation this boot writes and reads: 7.0, luo-v2 or 7.2, or a comma-separated list boot n takes entry (n-1) mod len of (default: "+paramABI+"= on the command line, else 7.0)")
	fs.BoolVar(&f.fix, "fix-finish-before-retrieve", false, "run the model with the 7.0 finish-before-retrieve flaw fixed")
	fs.BoolVar(&f.stay, "stay", false, "do not power off after the last boot")
	fs.BoolVar(&f.dryRun, "dry-run", false, "preserve, write the image and load the next kernel, then unload it and run the abort path: no reboot")
	fs.BoolVar(&f.allowKexec, "allow-kexec", false, "allow kexec outside kho-sim's own initramfs")
	f.realKHO.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}

	raw, err := os.ReadFile(f.cmdlineFile)
	if err != nil {
		return fmt.Errorf("read the kernel command line: %w", err)
	}
	cmdline := strings.TrimSpace(string(raw))
	params := cmdlineParams(cmdline)
	f.dryRun = f.dryRun || params[paramDryRun] == "1"
	cfg, err := f.resolve(params, cmdline)
	if err != nil {
		return err
	}
	if params[paramConsumer] == "1" {
		return runConsumer(f, cfg, stdout)
	}
	f.realKHO.region = cfg.rg
	if v := params[paramKernels]; v != "" && !flagSet(fs, "next-kernel") {
		list := strings.Split(v, ",")
		f.nextKernel = list[(cfg.In.Boot-1)%len(list)]
	}
	if f.loader, err = chooseLoader(f.loader, params, cfg.In.Boot); err != nil {
		return err
	}
	moreBoots := cfg.In.Boot < cfg.Boots
	if moreBoots && !f.dryRun && !f.allowKexec && !ownsMachine() {
		return usageError{"refusing to kexec: this is not kho-sim's initramfs (not PID 1, not its uinit). " +
			"Use --dry-run to prove the set-up without a reboot, or --allow-kexec to reboot this machine into " + f.nextKernel}
	}
	plan := preflightPlan{region: &cfg.rg, regionFrom: cfg.rgFrom, kexec: moreBoots, nextKernel: f.nextKernel, loader: f.loader, realKHO: f.realKHO.enabled(cmdline)}
	if err := (preflightEnv{root: "/", probe: kexec.Unload}).ruleOut(plan); err != nil {
		return err
	}
	if err := f.realKHO.check(moreBoots, f.nextKernel, cmdline); err != nil {
		return err
	}
	t0 := time.Now()
	region, err := physmem.OpenDevMem(physmem.DevMemSpec{Range: cfg.rg})
	if err != nil {
		return err
	}
	defer region.Close()
	cfg.Config.Region = region
	cfg.Config.Out = stdout
	if ownsMachine() {
		// u-root's init hands us a pipe it copies to the console; at a
		// reboot, what it has read but not yet written is lost. Write
		// the KTAP to the console itself, which drainConsole can wait for.
		if c, err := os.OpenFile("/dev/console", os.O_WRONLY|unix.O_NOCTTY, 0); err == nil {
			defer c.Close()
			cfg.Config.Out = c
		}
	}
	cfg.Config.Phases = []timing.Phase{{Name: "boot to start", D: bootToStart}, {Name: "region map", D: time.Since(t0)}}
	cfg.Config.Load = func(next sim.Handover) ([]timing.Phase, error) {
		return loadNext(f, cmdline, next, start)
	}
	cfg.Config.DryRun = f.dryRun
	if cfg.damage.kind != "" && cfg.damage.boot == cfg.In.Boot {
		cfg.Config.Damage = cfg.damage.apply
	}
	// This kernel reads the incoming handover: its RAM tells a pointer out
	// of the region into RAM from one beyond it.
	if entries, err := physmem.ReadIOMem("/proc/iomem"); err == nil {
		if ram, err := physmem.SystemRAM(entries); err == nil {
			cfg.Config.RAM = kho.NextRAM(ram)
		}
	}
	cfg.Config.TSCHz = timing.CalibrateTSC(2 * time.Millisecond)
	out := sim.Run(cfg.Config)

	switch {
	case f.dryRun || (!moreBoots && (f.stay || cfg.stay || !ownsMachine())):
	case out.Last:
		drainConsole()
		return unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	default:
		drainConsole()
		out.StampReboot()
		if err := loaderNamed(f.loader).Reboot(); err != nil {
			return fmt.Errorf("reboot into the loaded kernel: %w", err)
		}
	}
	if !out.OK {
		return errFailed
	}
	return nil
}

// runConfig is the run's resolved configuration.
type runConfig struct {
	sim.Config
	rg     physmem.Range
	rgFrom string // where rg came from, for preflight's note
	stay   bool
	damage damage
	then   string // the consumer boot's successor (paramThen)
}

// resolve merges flags and command line parameters; flags win.
func (f runFlags) resolve(p map[string]string, cmdline string) (runConfig, error) {
	var c runConfig
	name := cmp.Or(f.scenario, p[paramScenario], "default")
	sc, err := loadScenario(name)
	if err != nil {
		return c, err
	}
	c.Scenario = sc
	hops := f.hops
	if hops < 0 {
		hops = 2
		if v, ok := p[paramHops]; ok {
			if hops, err = parseCount(paramHops+"=", v, 0, 1000); err != nil {
				return c, err
			}
		}
	}
	c.Boots = hops + 1
	c.Fix = f.fix || p[paramFix] == "1"
	if c.damage, err = parseDamage(p[paramCorrupt]); err != nil {
		return c, err
	}
	c.stay = p[paramStay] == "1"
	c.then = p[paramThen]
	c.In.Boot = 1
	if v, ok := p[paramBoot]; ok {
		n, err := parseCount(paramBoot+"=", v, 1, c.Boots)
		if err != nil {
			return c, err
		}
		c.In.Boot = n
	}
	if v, ok := p[paramFDT]; ok {
		pa, err := parseAddress(paramFDT+"=", v)
		if err != nil {
			return c, err
		}
		c.In.RootPA = pa
		if _, ok := p[paramBoot]; !ok {
			return c, usageError{fmt.Sprintf("%s without %s: the previous boot always sets both", paramFDT, paramBoot)}
		}
	}
	if c.ABI, err = chooseABI(f.abi, p[paramABI], c.In.Boot); err != nil {
		return c, err
	}
	if r := cmp.Or(f.region, p[paramRegion]); r != "" {
		c.rg, err = physmem.ParseRegion(r)
		if err != nil {
			return c, usageError{fmt.Sprintf("region %q: %v", r, err)}
		}
		c.rgFrom = "--region"
		if f.region == "" {
			c.rgFrom = paramRegion + "="
		}
		return c, nil
	}
	rg, found, err := physmem.MemmapFromCmdline(cmdline)
	if err != nil {
		return c, usageError{fmt.Sprintf("memmap= on the command line: %v", err)}
	}
	if !found {
		return c, usageError{"no region: boot with memmap=16M$0x10000000 (or another free range) on the kernel command line, or pass --region SIZE@ADDR of a range /proc/iomem shows as Reserved"}
	}
	c.rg, c.rgFrom = rg, physmem.MemmapArg(rg)+" on the command line"
	return c, nil
}

// loadNext repacks the running root filesystem and loads the next kernel
// with a command line that carries the handover.
func loadNext(f runFlags, cmdline string, next sim.Handover, start time.Time) ([]timing.Phase, error) {
	phases := []timing.Phase{{Name: "start to load", D: time.Since(start)}}
	t0 := time.Now()
	initrd, phase, err := nextInitramfs()
	phases = append(phases, timing.Phase{Name: phase, D: time.Since(t0)})
	if err != nil {
		return phases, err
	}
	defer initrd.Close()
	// Every next kernel keeps its initramfs for the hop after it.
	set := map[string]string{paramBoot: fmt.Sprint(next.Boot), kexec.RetainParam: ""}
	drop := []string{paramFDT}
	if next.RootPA != 0 {
		set[paramFDT] = fmt.Sprintf("%#x", next.RootPA)
		drop = nil
	}
	nextCmdline, err := kexec.RewriteCmdline(cmdline, set, drop)
	if err != nil {
		return phases, err
	}
	t0 = time.Now()
	if f.realKHO.enabled(cmdline) {
		var p []timing.Phase
		p, err = f.realKHO.load(f.nextKernel, initrd, cmdline, next)
		phases = append(phases, p...)
	} else {
		err = loaderNamed(f.loader).Load(kexec.LoadOptions{Kernel: f.nextKernel, Initrd: initrd, Cmdline: nextCmdline})
		phase := "kexec_file_load"
		if f.loader == loaderKexecTools {
			phase += " (kexec-tools)"
		}
		phases = append(phases, timing.Phase{Name: phase, D: time.Since(t0)})
	}
	if err != nil {
		return phases, err
	}
	if f.dryRun {
		if err := kexec.Unload(); err != nil {
			return phases, fmt.Errorf("dry run: unload the kernel again: %w", err)
		}
	}
	return phases, nil
}

// nextInitramfs is the next kernel's initrd and the phase that made it:
// the initramfs this kernel booted from when it retained it (retain_initrd,
// which kho-sim puts on every next command line), which costs an open;
// else the root file system repacked, which costs a walk and a copy of
// every file (the kernel images included).
func nextInitramfs() (*os.File, string, error) {
	if f, size, err := kexec.RetainedInitrd(); err == nil {
		return f, fmt.Sprintf("initramfs retained (%s, %d KiB)", kexec.RetainedInitrdPath, size>>10), nil
	}
	f, st, err := kexec.RepackRootfs("/", nil)
	phase := fmt.Sprintf("initramfs repack (%d files, %d KiB)", st.Files, st.Bytes>>10)
	if err != nil {
		return nil, phase, fmt.Errorf("repack the root filesystem as the next initramfs: %w", err)
	}
	return f, phase, nil
}

// chooseABI picks this boot's generation from the flag, else kho_sim.abi=:
// boot n takes entry (n-1) mod len of the list, so one chain can cross
// generations and show what the next kernel does with the handover.
func chooseABI(flagValue, param string, boot int) (kernel.Generation, error) {
	v, from := flagValue, "--abi"
	if v == "" {
		v, from = param, paramABI
	}
	list, err := kernel.ParseList(v)
	if err != nil {
		return "", usageError{fmt.Sprintf("%s: %v", from, err)}
	}
	return list[(boot-1)%len(list)], nil
}

// chooseLoader picks this boot's loader: the flag, else kho_sim.loaders=
// (boot n uses entry (n-1) mod len, so one chain alternates loaders), else
// kho_sim.loader=, else kho-sim's own.
func chooseLoader(flagValue string, p map[string]string, boot int) (string, error) {
	name, from := flagValue, "--loader"
	switch {
	case name != "":
	case p[paramLoaders] != "":
		list := strings.Split(p[paramLoaders], ",")
		name, from = list[(boot-1)%len(list)], paramLoaders
	case p[paramLoader] != "":
		name, from = p[paramLoader], paramLoader
	default:
		return loaderKhoSim, nil
	}
	if name != loaderKhoSim && name != loaderKexecTools {
		return "", usageError{fmt.Sprintf("%s: loader %q: want %s or %s", from, name, loaderKhoSim, loaderKexecTools)}
	}
	return name, nil
}

// ownsMachine reports whether kho-sim runs as PID 1 or as the uinit of its
// own initramfs: the only places it may reboot the machine unasked.
func ownsMachine() bool {
	if os.Getpid() == 1 {
		return true
	}
	_, err := os.Stat(initramfsMarker)
	return err == nil && os.Getppid() == 1
}

// drainConsole waits for the console to send what was written, so the last
// KTAP lines survive the reboot. Under u-root's init, stdout is a pipe that
// init copies to /dev/console: wait until the pipe is empty and the console
// has sent everything, three rounds in a row (init may still hold what it
// read last). At most 5 s: a console that never drains (a board with flow
// control and no cable) must not stop the reboot.
func drainConsole() {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fd := int(os.Stdout.Fd())
		console, err := os.OpenFile("/dev/console", os.O_WRONLY|unix.O_NOCTTY, 0)
		if err == nil {
			defer console.Close()
		}
		for quiet := 0; quiet < 3; time.Sleep(5 * time.Millisecond) {
			n, err := unix.IoctlGetInt(fd, unix.TIOCINQ) // FIONREAD: bytes init has not read
			if console != nil {
				tcdrain(int(console.Fd()))
			}
			tcdrain(fd)
			if err != nil || n == 0 {
				quiet++
			} else {
				quiet = 0
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	unix.Sync()
	time.Sleep(20 * time.Millisecond)
}

// tcdrain waits for a tty to send its output; it does nothing on a file
// that is not a tty. The tty returns EINTR, never restarts, when a signal
// (the Go runtime's own) arrives mid-wait: wait again, or the power-off can
// cut the last boot's final lines.
func tcdrain(fd int) {
	for unix.IoctlSetInt(fd, unix.TCSBRK, 1) == unix.EINTR {
	}
}

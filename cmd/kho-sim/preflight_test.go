package main

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/pkg/kexec"
	"github.com/kho-sim/kho-sim/pkg/ktap"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// Check names as printed.
const (
	chkRegion   = "region reserved by memmap="
	chkIOMem    = "region reserved in /proc/iomem"
	chkDevMem   = "/dev/mem maps the region"
	chkLockdown = "kernel lockdown off"
	chkLoads    = "kexec loads permitted"
	chkFileLoad = "kexec_file_load supported"
	chkKernel   = "next kernel image loadable"
	chkMemory   = "memory for the next initramfs"
)

// realKernelSetup is the start of a real Debian bzImage (see its README).
const realKernelSetup = "../../pkg/kexec/testdata/vmlinuz-6.1.0-56-cloud-amd64.setup"

const goodIOMem = `00000000-00000fff : Reserved
00001000-0009fbff : System RAM
0009fc00-0009ffff : Reserved
00100000-0fffffff : System RAM
  01000000-01ffffff : Kernel code
10000000-10ffffff : Reserved
11000000-3ffdffff : System RAM
fed00000-fed003ff : HPET 0
`

// fakeMachine writes a tree a run would be happy with: memmap= on the
// command line, the region Reserved, /dev/mem, no lockdown, kexec allowed,
// a real kernel header in /kernels/next and 900 MB available.
func fakeMachine(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"proc/cmdline":                        "console=ttyS0 memmap=16M$0x10000000 quiet\n",
		"proc/iomem":                          goodIOMem,
		"proc/meminfo":                        "MemTotal:        1003652 kB\nMemFree:          912304 kB\nMemAvailable:     900000 kB\n",
		"proc/sys/kernel/kexec_load_disabled": "0\n",
		"proc/self/status":                    "Name:\tkho-sim\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n",
		"sys/kernel/security/lockdown":        "[none] integrity confidentiality\n",
		"sys/kernel/kexec_loaded":             "0\n",
		"dev/mem":                             "",
	}
	for name, content := range files {
		writeUnder(t, root, name, content)
	}
	kernel, err := os.ReadFile(realKernelSetup)
	if err != nil {
		t.Fatal(err)
	}
	writeUnder(t, root, "kernels/next", string(kernel))
	return root
}

func writeUnder(t *testing.T, root, name, content string) {
	t.Helper()
	p := filepath.Join(root, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// preflightOn runs the checks on a fake tree with a kexec_file_load probe,
// as the command does on a real root, and returns the parsed KTAP, the exit
// status and the raw output.
func preflightOn(t *testing.T, root string, probe func() error) (*ktap.Report, int, string) {
	t.Helper()
	var out bytes.Buffer
	checks := preflightEnv{root: root, probe: probe}.checks(preflightPlan{kexec: true, nextKernel: "/kernels/next", loader: loaderKhoSim})
	if err := writePreflight(&out, checks); err != nil {
		t.Fatal(err)
	}
	if probs := ktap.Validate(strings.NewReader(out.String())); len(probs) > 0 {
		t.Fatalf("invalid KTAP %v:\n%s", probs, out.String())
	}
	rep, err := ktap.Parse(strings.NewReader(out.String()))
	if err != nil || !rep.Passed() || len(rep.Results) != 8 {
		t.Fatalf("KTAP %v:\n%s", err, out.String())
	}
	return rep, preflightExit(checks), out.String()
}

func TestPreflightAllGood(t *testing.T) {
	rep, code, out := preflightOn(t, fakeMachine(t), func() error { return nil })
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	for _, r := range rep.Results {
		if r.Directive.Kind != "" {
			t.Errorf("result %d %q: %+v", r.Number, r.Description, r.Directive)
		}
	}
	if !strings.Contains(out, "# kho-sim preflight: nothing rules a run out") || !strings.Contains(out, "# Totals: pass:8 fail:0") {
		t.Errorf("summary:\n%s", out)
	}
}

func TestPreflightSkips(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, root string)
		probe  func() error
		skip   string   // the check that rules the run out
		reason []string // what its reason says
		also   []string // checks skipped as a consequence
	}{
		{"missing memmap", func(t *testing.T, root string) {
			writeUnder(t, root, "proc/cmdline", "console=ttyS0 quiet\n")
		}, nil, chkRegion, []string{"no memmap=SIZE$ADDR", "boot with memmap=16M$0x10000000", "--region"}, []string{chkIOMem, chkDevMem}},
		{"malformed memmap", func(t *testing.T, root string) {
			writeUnder(t, root, "proc/cmdline", "memmap=16Q$0x10000000\n")
		}, nil, chkRegion, []string{"memmap=16Q$0x10000000", "write it as memmap=16M$0x10000000"}, []string{chkIOMem, chkDevMem}},
		{"region too small", func(t *testing.T, root string) {
			writeUnder(t, root, "proc/cmdline", "memmap=64K$0x10000000\n")
		}, nil, chkRegion, []string{"at least 1 MiB"}, []string{chkIOMem, chkDevMem}},
		{"region over System RAM", func(t *testing.T, root string) {
			writeUnder(t, root, "proc/iomem", "00000000-00000fff : Reserved\n00001000-3ffdffff : System RAM\n")
		}, nil, chkIOMem, []string{"overlaps System RAM", "add memmap=16M$0x10000000 to the kernel command line"}, []string{chkDevMem}},
		{"region not reserved", func(t *testing.T, root string) {
			writeUnder(t, root, "proc/iomem", "00000000-00000fff : Reserved\n")
		}, nil, chkIOMem, []string{"nothing in /proc/iomem covers it"}, []string{chkDevMem}},
		{"no /dev/mem", func(t *testing.T, root string) {
			os.Remove(filepath.Join(root, "dev/mem"))
		}, nil, chkDevMem, []string{"mount -t devtmpfs"}, nil},
		{"lockdown integrity", func(t *testing.T, root string) {
			writeUnder(t, root, "sys/kernel/security/lockdown", "none [integrity] confidentiality\n")
		}, nil, chkLockdown, []string{"integrity mode", "forbids /dev/mem", "Secure Boot off"}, nil},
		{"kexec_load_disabled", func(t *testing.T, root string) {
			writeUnder(t, root, "proc/sys/kernel/kexec_load_disabled", "1\n")
		}, nil, chkLoads, []string{"kexec_load_disabled=1", "until the next boot"}, nil},
		{"no CAP_SYS_BOOT", func(t *testing.T, root string) {
			writeUnder(t, root, "proc/self/status", "Name:\tkho-sim\nCapEff:\t0000000000000000\n")
		}, nil, chkLoads, []string{"CAP_SYS_BOOT", "run as root"}, nil},
		{"kexec state unreadable", func(t *testing.T, root string) {
			os.Remove(filepath.Join(root, "proc/self/status"))
		}, nil, chkLockdown, []string{"cannot read the kexec state", "mount /proc"}, []string{chkLoads, chkFileLoad}},
		{"no kexec_file_load", nil, func() error { return &kexec.LoadError{Errno: unix.ENOSYS} }, chkFileLoad,
			[]string{"ENOSYS", "CONFIG_KEXEC_FILE=y"}, nil},
		{"kexec_file_load refused", nil, func() error { return &kexec.LoadError{Errno: unix.EPERM} }, chkFileLoad,
			[]string{"EPERM", "run as root"}, nil},
		{"missing kernel", func(t *testing.T, root string) {
			os.Remove(filepath.Join(root, "kernels/next"))
		}, nil, chkKernel, []string{"no such file", "--next-kernel PATH"}, nil},
		{"not a kernel", func(t *testing.T, root string) {
			writeUnder(t, root, "kernels/next", strings.Repeat("#!/bin/sh\necho hello\n", 100))
		}, nil, chkKernel, []string{"is not an x86 bzImage", "ENOEXEC", "relocatable 64-bit bzImage"}, nil},
		{"low memory", func(t *testing.T, root string) {
			writeUnder(t, root, "proc/meminfo", "MemTotal: 100000 kB\nMemAvailable:  60000 kB\n")
		}, nil, chkMemory, []string{"MemAvailable 58 MiB", "needs 64 MiB", "more memory"}, nil},
		{"no meminfo", func(t *testing.T, root string) {
			os.Remove(filepath.Join(root, "proc/meminfo"))
		}, nil, chkMemory, []string{"cannot read free memory", "mount /proc"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := fakeMachine(t)
			if tt.damage != nil {
				tt.damage(t, root)
			}
			probe := tt.probe
			if probe == nil {
				probe = func() error { return nil }
			}
			rep, code, out := preflightOn(t, root, probe)
			if code != ksftSkip {
				t.Errorf("exit %d, want %d", code, ksftSkip)
			}
			r := rep.Find(tt.skip)
			if r == nil || r.Directive.Kind != ktap.DirSkip {
				t.Fatalf("%q not skipped:\n%s", tt.skip, out)
			}
			for _, w := range tt.reason {
				if !strings.Contains(r.Directive.Reason, w) {
					t.Errorf("reason %q lacks %q", r.Directive.Reason, w)
				}
			}
			skipped := map[string]bool{tt.skip: true}
			for _, name := range tt.also {
				skipped[name] = true
				if r := rep.Find(name); r == nil || r.Directive.Kind != ktap.DirSkip {
					t.Errorf("%q not skipped as a consequence:\n%s", name, out)
				}
			}
			for _, r := range rep.Results {
				if !skipped[r.Description] && r.Directive.Kind == ktap.DirSkip {
					t.Errorf("%q skipped too: %s", r.Description, r.Directive.Reason)
				}
			}
			if !strings.Contains(out, "# kho-sim preflight: a run is ruled out; fix "+tt.skip+" (") {
				t.Errorf("summary does not name %q as the thing to fix:\n%s", tt.skip, out)
			}
		})
	}
}

func TestPreflightLeavesLoadedImage(t *testing.T) {
	root := fakeMachine(t)
	writeUnder(t, root, "sys/kernel/kexec_loaded", "1\n")
	rep, _, _ := preflightOn(t, root, func() error {
		t.Error("probed kexec_file_load with an image loaded: KEXEC_FILE_UNLOAD would drop it")
		return nil
	})
	if r := rep.Find(chkFileLoad); r == nil || !strings.Contains(r.Directive.Reason, "not probed") {
		t.Errorf("result %+v", r)
	}
}

// TestPreflightFlags runs the command as a user would, on a fake tree (the
// probe never runs there).
func TestPreflightFlags(t *testing.T) {
	root := fakeMachine(t)
	var out, errs bytes.Buffer
	code, err := preflightStatus([]string{"--sysroot", root}, &out, &errs, func() error {
		t.Error("probed kexec_file_load under --sysroot")
		return nil
	})
	if err != nil || code != 0 || !strings.Contains(out.String(), "not probed: --sysroot is not this machine") {
		t.Errorf("exit %d, %v\n%s", code, err, out.String())
	}

	writeUnder(t, root, "proc/cmdline", "quiet\n")
	out.Reset()
	code, err = preflightStatus([]string{"--sysroot", root, "--region", "16M@0x10000000", "--next-kernel", "/kernels/next"}, &out, &errs, nil)
	if err != nil || code != 0 || !strings.Contains(out.String(), "ok 1 "+chkRegion+" # region [0x10000000-0x10ffffff] from --region") {
		t.Errorf("--region: exit %d, %v\n%s", code, err, out.String())
	}

	out.Reset()
	code, err = preflightStatus([]string{"--sysroot", root, "--next-kernel", "/boot/none"}, &out, &errs, nil)
	if err != nil || code != ksftSkip || !strings.Contains(out.String(), "/boot/none") {
		t.Errorf("--next-kernel: exit %d, %v\n%s", code, err, out.String())
	}

	for _, args := range [][]string{{"--region", "16M"}, {"stray"}, {"--bogus"}} {
		if code, _, errs := runCLI(append([]string{"preflight", "--sysroot", root}, args...)...); code != 2 || strings.Count(errs, "\n") < 1 {
			t.Errorf("%v: exit %d, stderr %q", args, code, errs)
		}
	}
	if code, _, errs := runCLI("preflight", "--help"); code != 0 || !strings.Contains(errs, "usage: kho-sim preflight") {
		t.Errorf("--help: exit %d, %q", code, errs)
	}
}

// TestPreflightExitStatus checks the real exit status of the command: 4,
// kselftest's KSFT_SKIP, when a check rules the run out.
func TestPreflightExitStatus(t *testing.T) {
	if args := os.Getenv("KHO_SIM_PREFLIGHT_ARGS"); args != "" {
		os.Exit(mainWithArgs(strings.Split(args, "\n"), os.Stdout, os.Stderr))
	}
	for _, tt := range []struct {
		name    string
		cmdline string
		want    int
	}{{"ready", "memmap=16M$0x10000000\n", 0}, {"no memmap", "quiet\n", ksftSkip}} {
		root := fakeMachine(t)
		writeUnder(t, root, "proc/cmdline", tt.cmdline)
		cmd := exec.Command(os.Args[0], "-test.run=^TestPreflightExitStatus$")
		cmd.Env = append(os.Environ(), "KHO_SIM_PREFLIGHT_ARGS=preflight\n--sysroot\n"+root)
		out, err := cmd.Output()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tt.want || !strings.HasPrefix(string(out), "KTAP version 1\n1..8\n") {
			t.Errorf("%s: exit %d, want %d\n%s", tt.name, code, tt.want, out)
		}
	}
}

// TestPreflightKexecTools: the kexec-tools loader needs its binary; the
// check appears only for that loader.
func TestPreflightKexecTools(t *testing.T) {
	root := fakeMachine(t)
	plan := preflightPlan{kexec: true, nextKernel: "/kernels/next", loader: loaderKexecTools}
	env := preflightEnv{root: root}
	last := func() preflightCheck { c := env.checks(plan); return c[len(c)-1] }
	if c := last(); c.name != "kexec-tools installed" || !strings.Contains(c.skip, "no such file") || !strings.Contains(c.skip, "the kho-sim loader") {
		t.Errorf("missing kexec: %+v", c)
	}
	writeUnder(t, root, kexec.KexecToolsPath, "#!/bin/sh\n")
	if c := last(); !strings.Contains(c.skip, "not an executable file") {
		t.Errorf("kexec not executable: %+v", c)
	}
	if err := os.Chmod(filepath.Join(root, kexec.KexecToolsPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if c := last(); c.skip != "" {
		t.Errorf("kexec installed: %+v", c)
	}
	plan.loader = loaderKhoSim
	for _, c := range env.checks(plan) {
		if c.name == "kexec-tools installed" {
			t.Error("the kexec-tools check runs for the kho-sim loader")
		}
	}
	var out, errs bytes.Buffer
	if code, err := preflightStatus([]string{"--sysroot", root, "--loader", loaderKexecTools}, &out, &errs, nil); err != nil || code != 0 || !strings.Contains(out.String(), "1..9\n") {
		t.Errorf("--loader kexec-tools: exit %d, %v\n%s", code, err, out.String())
	}
	if code, _, errs := runCLI("preflight", "--sysroot", root, "--loader", "grub"); code != 2 || !strings.Contains(errs, `loader "grub"`) {
		t.Errorf("--loader grub: exit %d, %q", code, errs)
	}
}

// TestRuleOut is run's use of the checks: the region checks always apply,
// the kexec checks only when the boot will load a kernel, and the error
// names each cause, not its consequences.
func TestRuleOut(t *testing.T) {
	rg := physmem.Range{Start: 0x10000000, Size: 16 << 20}
	plan := preflightPlan{region: &rg, regionFrom: "kho_sim.region=", nextKernel: "/kernels/next", loader: loaderKhoSim}
	root := fakeMachine(t)
	env := preflightEnv{root: root}
	for _, kexecToo := range []bool{false, true} {
		plan.kexec = kexecToo
		if err := env.ruleOut(plan); err != nil {
			t.Errorf("kexec %v: ready machine ruled out: %v", kexecToo, err)
		}
	}
	os.Remove(filepath.Join(root, "kernels/next"))
	writeUnder(t, root, "proc/sys/kernel/kexec_load_disabled", "1\n")
	plan.kexec = false
	if err := env.ruleOut(plan); err != nil {
		t.Errorf("the last boot needs no kexec, yet: %v", err)
	}
	plan.kexec = true
	err := env.ruleOut(plan)
	if err == nil || !strings.Contains(err.Error(), chkLoads+": kernel.kexec_load_disabled=1") || !strings.Contains(err.Error(), chkKernel+": ") {
		t.Errorf("kexec problems: %v", err)
	}
	writeUnder(t, root, "proc/iomem", "00000000-00000fff : Reserved\n")
	plan.kexec = false
	err = env.ruleOut(plan)
	if err == nil || !strings.Contains(err.Error(), chkIOMem+": ") || strings.Contains(err.Error(), chkDevMem) {
		t.Errorf("unreserved region: %v, want the iomem cause without its /dev/mem consequence", err)
	}
}

// TestPreflightRealKHO: --real-kho adds kexec_load's check, which lockdown
// (it refuses kexec_load outright) and a next kernel that is no bzImage
// rule out, each with its reason; run's plan carries the same check.
func TestPreflightRealKHO(t *testing.T) {
	root := fakeMachine(t)
	// The real setup header padded to the length its syssize claims.
	kernel, err := os.ReadFile(realKernelSetup)
	if err != nil {
		t.Fatal(err)
	}
	syssize := uint64(binary.LittleEndian.Uint32(kernel[0x1f4:])) * 16
	writeUnder(t, root, "kernels/next", string(kernel)+string(make([]byte, syssize)))
	plan := preflightPlan{kexec: true, nextKernel: "/kernels/next", realKHO: true}
	env := preflightEnv{root: root}
	last := func() preflightCheck { c := env.checks(plan); return c[len(c)-1] }
	if c := last(); c.name != "kexec_load of a KHO kernel possible" || c.skip != "" {
		t.Errorf("good machine: %+v", c)
	}
	writeUnder(t, root, "sys/kernel/security/lockdown", "none [integrity] confidentiality\n")
	if c := last(); !strings.Contains(c.skip, "lockdown=integrity: kexec_load(2)") {
		t.Errorf("lockdown: %+v", c)
	}
	writeUnder(t, root, "sys/kernel/security/lockdown", "[none] integrity confidentiality\n")
	writeUnder(t, root, "kernels/next", "not a kernel")
	if c := last(); c.skip == "" {
		t.Errorf("a next kernel that is no bzImage: %+v", c)
	}
	plan.realKHO = false
	for _, c := range env.checks(plan) {
		if c.name == "kexec_load of a KHO kernel possible" {
			t.Error("the kexec_load check runs without --real-kho")
		}
	}
	var out, errs bytes.Buffer
	if code, err := preflightStatus([]string{"--sysroot", root, "--real-kho"}, &out, &errs, nil); err != nil || code != ksftSkip || !strings.Contains(out.String(), "# SKIP") {
		t.Errorf("--real-kho with a bad kernel: exit %d, %v\n%s", code, err, out.String())
	}
}

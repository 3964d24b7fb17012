package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kho-sim/kho-sim/pkg/ktap"
)

// Environment of the QEMU tests.
const (
	envRequired  = "KHO_SIM_E2E"        // "required": fail instead of skipping
	envKernel    = "KHO_SIM_KERNEL"     // bzImage to boot
	envKernelAlt = "KHO_SIM_KERNEL_ALT" // Linux 7.x bzImage for the cross-version chain
	envCache     = "KHO_SIM_CACHE"      // scripts/fetch-kernel.sh's cache
	envInitramfs = "KHO_SIM_INITRAMFS"  // prebuilt initramfs (else built by initramfs/build.sh)
	envAccel     = "KHO_SIM_ACCEL"      // "kvm" to use KVM; TCG otherwise
	envHops      = "KHO_SIM_HOPS"       // kexec hops, at least 2
	envScenario  = "KHO_SIM_SCENARIO"   // kho_sim.scenario=; kho-sim's default if empty
	envTimeout   = "KHO_SIM_TIMEOUT"    // seconds for the whole run
	envSilence   = "KHO_SIM_SILENCE"    // seconds without console output before giving up
)

const (
	defaultHops    = 2
	defaultTimeout = 300 * time.Second
	defaultSilence = 60 * time.Second
	// memmap reserves the handover region; QEMU gets it through -append
	// unquoted, so the '$' needs no escaping here.
	memmap = "memmap=16M$0x10000000"
)

// TestQEMUHandover boots a Debian kernel with the kho-sim initramfs and lets
// kho-sim chain its kexec hops; every boot must report a passing subtest.
// The chain runs on Debian 6.1 throughout, then, when a Linux 7.x kernel is
// at hand, once more starting from 7.x: a hop between kernel versions.
//
// QEMU runs under os/exec rather than github.com/hugelgupf/vmtest/qemu:
// that package needs github.com/Netflix/go-expect and github.com/creack/pty,
// which this module does not require, for an expect console this test does
// not use; and everything it would add had to be set by hand anyway (TCG,
// since nested KVM hangs on the project's machines; memory; console=ttyS0;
// -no-reboot; a timeout). A watchdog stops a guest that stops printing.
func TestQEMUHandover(t *testing.T) {
	env := newE2EEnv(t)
	kernel := env.kernel()
	initramfs := env.initramfs(kernel)

	t.Run("6.1", func(t *testing.T) {
		runChain(t, env, kernel, initramfs, nil)
	})
	t.Run("7.x-to-6.1", func(t *testing.T) {
		first := altKernel(t)
		// loglevel=6 after quiet lets the kernel's version banner (a
		// notice) through, to tell which kernel each boot ran.
		log := runChain(t, env, first, initramfs, []string{"loglevel=6"})
		versions := bannerVersions(log)
		t.Logf("kernels booted: %q", versions)
		if len(versions) != env.boots() {
			t.Fatalf("%d kernel banners in the log, want %d", len(versions), env.boots())
		}
		if !strings.HasPrefix(versions[0], "7.") {
			t.Errorf("boot 1 ran Linux %s, want 7.x", versions[0])
		}
		for i, v := range versions[1:] {
			if !strings.HasPrefix(v, "6.1.") {
				t.Errorf("boot %d ran Linux %s, want /kernels/next, 6.1", i+2, v)
			}
		}
	})
}

// runChain boots kernel with initramfs, judges the KTAP of every boot and
// returns the serial log.
func runChain(t *testing.T, env *e2eEnv, kernel, initramfs string, extraArgs []string) []byte {
	t.Helper()
	// The log outlives the test (out/ is ignored by git) for a look after a
	// failure; every line is also in the test's own log.
	logPath := filepath.Join(repoRoot(t), "out", "e2e-"+strings.ReplaceAll(t.Name(), "/", "-")+".log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"console=ttyS0", "quiet", memmap, "kho_sim.hops=" + strconv.Itoa(env.hops)}
	if s := os.Getenv(envScenario); s != "" {
		args = append(args, "kho_sim.scenario="+s)
	}
	args = append(args, extraArgs...)
	run := runQEMU(t, kernel, initramfs, logPath, args, env.timeout, env.silence)
	t.Logf("wall time %.1f s for %d boots", run.wall.Seconds(), env.boots())

	if run.stalled != "" {
		t.Errorf("QEMU stopped: %s", run.stalled)
	} else if run.err != nil {
		t.Errorf("QEMU: %v", run.err)
	}
	log, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := ktap.Parse(bytes.NewReader(log))
	if err != nil {
		t.Fatalf("serial log %s: %v", logPath, err)
	}
	v := Judge(rep, env.boots())
	var summary strings.Builder
	if err := v.WriteSummary(&summary); err != nil {
		t.Fatal(err)
	}
	t.Logf("serial log %s; KTAP verdict:\n%s", logPath, summary.String())
	for _, p := range v.Problems {
		t.Errorf("KTAP: %s", p)
	}
	return log
}

// bannerVersions returns the release of every "Linux version" banner in a
// console log, in order: one per boot.
func bannerVersions(log []byte) []string {
	const banner = "Linux version "
	var out []string
	for _, line := range strings.Split(string(log), "\n") {
		_, rest, ok := strings.Cut(line, banner)
		if !ok {
			continue
		}
		if f := strings.Fields(rest); len(f) > 0 {
			out = append(out, f[0])
		}
	}
	return out
}

// altKernel returns KHO_SIM_KERNEL_ALT or the newest Linux 7.x kernel that
// scripts/fetch-kernel.sh sid|experimental left in its cache; without one
// the test skips, even when the QEMU tests are required: the second kernel
// version is optional.
func altKernel(t *testing.T) string {
	t.Helper()
	if k := envPath(t, envKernelAlt); k != "" {
		if _, err := os.Stat(k); err != nil {
			t.Fatalf("%s: %v", envKernelAlt, err)
		}
		return k
	}
	found, err := filepath.Glob(filepath.Join(cacheDir(t), "linux-binary-7.*-cloud-amd64", "usr", "lib", "modules", "*", "vmlinuz"))
	if err != nil {
		t.Fatal(err)
	}
	if len(found) == 0 {
		t.Skipf("no Linux 7.x kernel: set %s or run scripts/fetch-kernel.sh experimental", envKernelAlt)
	}
	slices.Sort(found) // names differ in their version only
	return found[len(found)-1]
}

// e2eEnv decides between skipping and failing when something is missing.
type e2eEnv struct {
	t        *testing.T
	required bool
	hops     int
	timeout  time.Duration // whole run
	silence  time.Duration // no console output
}

func (e *e2eEnv) boots() int { return e.hops + 1 }

func newE2EEnv(t *testing.T) *e2eEnv {
	t.Helper()
	e := &e2eEnv{t: t, required: os.Getenv(envRequired) == "required"}
	if testing.Short() && !e.required {
		t.Skip("QEMU boot test skipped in -short mode")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		e.missing("qemu-system-x86_64 not found: apt-get install -y --no-install-recommends qemu-system-x86")
	}
	e.hops = e.intEnv(envHops, defaultHops)
	if e.hops < 2 {
		t.Fatalf("%s=%d: the test wants at least 2 hops", envHops, e.hops)
	}
	e.timeout = e.secondsEnv(envTimeout, defaultTimeout)
	e.silence = e.secondsEnv(envSilence, defaultSilence)
	return e
}

func (e *e2eEnv) missing(format string, args ...any) {
	e.t.Helper()
	msg := fmt.Sprintf(format, args...)
	if e.required {
		e.t.Fatalf("%s (%s=required)", msg, envRequired)
	}
	e.t.Skip(msg)
}

func (e *e2eEnv) intEnv(name string, def int) int {
	e.t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		e.t.Fatalf("%s=%q: %v", name, s, err)
	}
	return n
}

func (e *e2eEnv) secondsEnv(name string, def time.Duration) time.Duration {
	e.t.Helper()
	return time.Duration(e.intEnv(name, int(def/time.Second))) * time.Second
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// envPath returns the path in the environment variable name; a relative one
// is taken from the repository's root, where the scripts run, not from the
// package directory go test runs in.
func envPath(t *testing.T, name string) string {
	p := os.Getenv(name)
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(repoRoot(t), p)
}

// cacheDir is where scripts/fetch-kernel.sh keeps kernels.
func cacheDir(t *testing.T) string {
	if c := envPath(t, envCache); c != "" {
		return c
	}
	return filepath.Join(repoRoot(t), ".cache", "kernels")
}

// kernel returns KHO_SIM_KERNEL or the newest Debian 6.1 kernel that
// scripts/fetch-kernel.sh left in its cache. It never downloads.
func (e *e2eEnv) kernel() string {
	e.t.Helper()
	if k := envPath(e.t, envKernel); k != "" {
		if _, err := os.Stat(k); err != nil {
			e.t.Fatalf("%s: %v", envKernel, err)
		}
		return k
	}
	cache := cacheDir(e.t)
	found, err := filepath.Glob(filepath.Join(cache, "linux-image-6.1.0-*-cloud-amd64", "boot", "vmlinuz-*"))
	if err != nil {
		e.t.Fatal(err)
	}
	if len(found) == 0 {
		e.missing("no kernel: set %s or run scripts/fetch-kernel.sh (cache %s)", envKernel, cache)
	}
	slices.SortFunc(found, compareABI)
	return found[len(found)-1]
}

// compareABI orders kernel paths by the ABI number in "6.1.0-NN-cloud".
func compareABI(a, b string) int {
	return abiNumber(a) - abiNumber(b)
}

func abiNumber(path string) int {
	_, rest, ok := strings.Cut(filepath.Base(path), "6.1.0-")
	if !ok {
		return -1
	}
	num, _, _ := strings.Cut(rest, "-")
	n, err := strconv.Atoi(num)
	if err != nil {
		return -1
	}
	return n
}

// initramfs returns KHO_SIM_INITRAMFS or builds one with kernel inside.
func (e *e2eEnv) initramfs(kernel string) string {
	e.t.Helper()
	if p := envPath(e.t, envInitramfs); p != "" {
		if _, err := os.Stat(p); err != nil {
			e.t.Fatalf("%s: %v", envInitramfs, err)
		}
		return p
	}
	out := filepath.Join(e.t.TempDir(), "kho-sim.cpio")
	cmd := exec.Command(filepath.Join(repoRoot(e.t), "initramfs", "build.sh"), out, kernel)
	start := time.Now()
	b, err := cmd.CombinedOutput()
	if err != nil {
		e.t.Fatalf("initramfs/build.sh: %v\n%s", err, b)
	}
	e.t.Logf("initramfs built in %.1f s: %s", time.Since(start).Seconds(), lastLine(b))
	return out
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

type qemuRun struct {
	wall    time.Duration
	err     error  // from QEMU (non-zero exit, killed)
	stalled string // why the watchdog stopped QEMU, if it did
}

// runQEMU boots the guest and returns when QEMU has exited or was stopped.
func runQEMU(t *testing.T, kernel, initramfs, logPath string, args []string, timeout, silence time.Duration) qemuRun {
	t.Helper()
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	serial := &activityWriter{w: io.MultiWriter(logFile, &lineLogger{logf: t.Logf}), last: time.Now()}

	accel := []string{"-accel", "tcg"}
	if os.Getenv(envAccel) == "kvm" {
		accel = []string{"-accel", "kvm", "-cpu", "host"}
	}
	qemuArgs := append(accel,
		"-m", "1G", "-smp", "1",
		"-nographic",
		// With panic=-1 a guest panic reboots at once and -no-reboot turns
		// that, or the poweroff after the last hop, into QEMU's exit.
		// A kexec is not a machine reset: one QEMU process serves every hop.
		"-no-reboot",
		"-kernel", kernel,
		"-initrd", initramfs,
		"-append", strings.Join(append(args, "panic=-1"), " "),
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", qemuArgs...)
	cmd.Stdout = serial // the same writer for both: one copying goroutine
	cmd.Stderr = serial
	cmd.WaitDelay = 5 * time.Second
	t.Logf("QEMU: %s", quoteArgs(cmd.Args))

	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting QEMU: %v", err)
	}
	done := make(chan struct{})
	stalled := make(chan string, 1)
	go func() {
		stalled <- watchdog(done, serial, start, timeout, silence, cancel)
	}()
	run := qemuRun{err: cmd.Wait()}
	close(done)
	run.stalled = <-stalled
	run.wall = time.Since(start)
	return run
}

func quoteArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = a
		if strings.ContainsAny(a, " $") {
			q[i] = "'" + a + "'"
		}
	}
	return strings.Join(q, " ")
}

// lineLogger passes whole lines of console output to logf, with control
// characters (terminal escapes from the firmware) made visible.
type lineLogger struct {
	logf    func(format string, args ...any)
	partial []byte
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := strings.Map(func(r rune) rune {
			if r < 0x20 && r != '\t' || r == 0x7f {
				return -1
			}
			return r
		}, string(l.partial[:i]))
		l.logf("guest: %s", line)
		l.partial = l.partial[i+1:]
	}
}

// watchdog stops the VM (cancel) once the guest has printed nothing for
// silence or the run has taken timeout, and says why; it returns "" once done
// is closed.
func watchdog(done <-chan struct{}, serial *activityWriter, start time.Time, timeout, silence time.Duration, cancel func()) string {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return ""
		case now := <-tick.C:
			var why string
			switch {
			case now.Sub(serial.lastWrite()) >= silence:
				why = fmt.Sprintf("guest printed nothing for %s", silence)
			case now.Sub(start) >= timeout:
				why = fmt.Sprintf("time limit of %s reached", timeout)
			default:
				continue
			}
			cancel()
			return why
		}
	}
}

// activityWriter writes the serial log and remembers when the guest last
// printed, for the silence watchdog.
type activityWriter struct {
	w    io.Writer
	mu   sync.Mutex
	last time.Time
}

func (a *activityWriter) Write(p []byte) (int, error) {
	a.mu.Lock()
	a.last = time.Now()
	a.mu.Unlock()
	return a.w.Write(p)
}

func (a *activityWriter) lastWrite() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.last
}

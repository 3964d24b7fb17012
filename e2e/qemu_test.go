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
)

// Environment of the QEMU tests.
const (
	envRequired  = "KHO_SIM_E2E"        // "required": fail instead of skipping
	envKernel    = "KHO_SIM_KERNEL"     // bzImage to boot
	envKernelAlt = "KHO_SIM_KERNEL_ALT" // Linux 7.x bzImage for the cross-version chain
	envCache     = "KHO_SIM_CACHE"      // scripts/fetch-kernel.sh's cache
	envInitramfs = "KHO_SIM_INITRAMFS"  // prebuilt initramfs (else built by initramfs/build.sh)
	envAccel     = "KHO_SIM_ACCEL"      // "kvm" to use KVM; TCG otherwise
	envHops      = "KHO_SIM_HOPS"       // kexec hops of the default case, at least 1
	envScenario  = "KHO_SIM_SCENARIO"   // kho_sim.scenario= of the default case; kho-sim's default if empty
	envTimeout   = "KHO_SIM_TIMEOUT"    // seconds for each VM run (default: by its boots)
	envSilence   = "KHO_SIM_SILENCE"    // seconds without console output before giving up
)

const (
	defaultHops = 2
	// The guest prints nothing between a kexec and kho-sim's start; with
	// two VMs on two cores under TCG and more load on the host, that
	// blackout took up to 37 s.
	defaultSilence = 120 * time.Second
	// memmap reserves the handover region; QEMU gets it through -append
	// unquoted, so the '$' needs no escaping here.
	memmap = "memmap=16M$0x10000000"
)

// altKernel returns KHO_SIM_KERNEL_ALT or the newest Linux 7.x kernel that
// scripts/fetch-kernel.sh sid|experimental left in its cache, or "" if there
// is none; that is a failure only when the QEMU tests are required.
func (e *e2eEnv) altKernel() string {
	e.t.Helper()
	if k := envPath(e.t, envKernelAlt); k != "" {
		if _, err := os.Stat(k); err != nil {
			e.t.Fatalf("%s: %v", envKernelAlt, err)
		}
		return k
	}
	found, err := filepath.Glob(filepath.Join(cacheDir(e.t), "linux-binary-7.*-cloud-amd64", "usr", "lib", "modules", "*", "vmlinuz"))
	if err != nil {
		e.t.Fatal(err)
	}
	if len(found) == 0 {
		if e.required {
			e.t.Fatalf("no Linux 7.x kernel for the cross-version chains: set %s or run scripts/fetch-kernel.sh experimental (%s=required)", envKernelAlt, envRequired)
		}
		return ""
	}
	slices.Sort(found) // names differ in their version only
	return found[len(found)-1]
}

// e2eEnv decides between skipping and failing when something is missing.
type e2eEnv struct {
	t        *testing.T
	required bool
	hops     int           // of the default case
	timeout  time.Duration // a whole VM run; 0: by its number of boots
	silence  time.Duration // no console output
}

// vmTimeout bounds a VM run of boots boots: generous, since two VMs share
// the two cores of the project's machines under TCG.
func (e *e2eEnv) vmTimeout(boots int) time.Duration {
	if e.timeout > 0 {
		return e.timeout
	}
	return 60*time.Second + time.Duration(boots)*45*time.Second
}

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
	if e.hops < 1 {
		t.Fatalf("%s=%d: the test wants at least 1 hop", envHops, e.hops)
	}
	e.timeout = e.secondsEnv(envTimeout, 0)
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

// initramfs returns KHO_SIM_INITRAMFS or builds one with kernel at
// /kernels/next and, if not empty, alt at /kernels/alt.
func (e *e2eEnv) initramfs(kernel, alt string) string {
	e.t.Helper()
	if p := envPath(e.t, envInitramfs); p != "" {
		if _, err := os.Stat(p); err != nil {
			e.t.Fatalf("%s: %v", envInitramfs, err)
		}
		return p
	}
	out := filepath.Join(e.t.TempDir(), "kho-sim.cpio")
	args := []string{out, kernel}
	if alt != "" {
		args = append(args, alt)
	}
	cmd := exec.Command(filepath.Join(repoRoot(e.t), "initramfs", "build.sh"), args...)
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
	// Only to the file: the lines of VMs running side by side would
	// interleave in the test's output. A failing case logs the file.
	serial := &activityWriter{w: logFile, last: time.Now()}

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
// characters (terminal escapes from the firmware) dropped.
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

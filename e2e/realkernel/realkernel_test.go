package realkernel

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/luo"
)

// requireEnv opts in: "1" runs and skips over a missing tool, "required"
// makes every missing piece a failure.
const requireEnv = "KHO_SIM_LUO_KERNEL"

const (
	qemuBin = "qemu-system-x86_64"
	// bootTimeout bounds one QEMU run (two boots under TCG take ~10 s).
	bootTimeout = 5 * time.Minute
	// runsEach is how often each round trip is booted, alternating, so that
	// one slow moment of the host does not decide the comparison.
	runsEach = 2
	// baseAppend is the command line every boot shares. no_timer_check:
	// under TCG on a busy host the IO-APIC timer check (check_timer in
	// arch/x86/kernel/apic/io_apic.c) can miss the ticks it waits for and
	// panic "IO-APIC + timer doesn't work!", seen after a kexec into 7.3.
	baseAppend = "console=ttyS0 panic=-1 printk.time=1 no_timer_check"
	// selftestPass is the wrapper's line after luo_kexec_simple --stage 2
	// exited 0; selftestOwnPass is the selftest's own.
	selftestPass    = "LUO-SELFTEST stage=2: TEST PASSED"
	selftestOwnPass = "--- SIMPLE KEXEC TEST PASSED ---"
	// khoSimDone is kho-sim's last line after the last boot's KTAP.
	khoSimDone = "# kho-sim: done"
	// haltedText is the kernel's line when a power-off only halts.
	haltedText = "System halted"
	testFLBs   = 3
	// testFLBData is the handle of the kernel's liveupdate-test-flb-v0; v1
	// and v2 add 1 and 2 (lib/tests/liveupdate.c).
	testFLBData = 0xfeedf00dcafebee0
)

// harness carries the opt-in mode through the steps; each subtest has
// its own (sub), with its temporary directory and the directory under out/
// that keeps the serial log of every QEMU boot it runs.
type harness struct {
	t        *testing.T
	required bool
	repo     string
	tmp      string
	logDir   string
	// rootTmp is the top-level test's directory; initramfs the kho-sim
	// initramfs every lane shares.
	rootTmp   string
	initramfs *khoSimInitramfs
}

// optIn starts every real-kernel test: the opt-in (a skip saying what the
// test would do unless requireEnv is 1 or required), a harness whose fresh
// temporary directory also holds the serial logs until keepLog copies them
// to out/ and the kho-sim initramfs its lanes share, and QEMU on PATH.
func optIn(t *testing.T, would string) *harness {
	mode := os.Getenv(requireEnv)
	switch mode {
	case "required", "1":
	case "":
		t.Skipf("set %s=1 (or =required) to %s", requireEnv, would)
	default:
		t.Fatalf("%s=%q: want 1 or required", requireEnv, mode)
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, required: mode == "required", repo: repo, tmp: t.TempDir(), initramfs: new(khoSimInitramfs)}
	h.logDir, h.rootTmp = h.tmp, h.tmp
	if _, err := exec.LookPath(qemuBin); err != nil {
		h.missing("%s not found: %v", qemuBin, err)
	}
	return h
}

// sub is the harness of subtest t, whose serial logs go to
// out/realkernel/NAME/.
func (h *harness) sub(t *testing.T, name string) *harness {
	c := *h
	c.t, c.tmp = t, t.TempDir()
	c.logDir = filepath.Join(h.repo, "out", "realkernel", name)
	if err := os.MkdirAll(c.logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	return &c
}

// missing reports a piece of the environment that is not there: a failure
// under KHO_SIM_LUO_KERNEL=required, a skip otherwise.
func (h *harness) missing(format string, args ...any) {
	h.t.Helper()
	if h.required {
		h.t.Fatalf("KHO_SIM_LUO_KERNEL=required: "+format, args...)
	}
	h.t.Skipf(format+" (KHO_SIM_LUO_KERNEL=required makes this a failure)", args...)
}

// series are the kernels scripts/luo-kernel/build.sh builds, in the order
// they are built.
func series() []string { return []string{"7.2", "7.3"} }

// realKernel is one kernel built by scripts/luo-kernel/build.sh.
type realKernel struct {
	series   string
	bzImage  string
	selftest string // its tree's luo_kexec_simple
	version  string // the Debian version of linux-source (its cache directory)
	release  string // uname -r
	build    time.Duration
}

// TestRealKernel builds (or reuses) the real 7.2 and 7.3 kernels, and for
// each, side by side: captures its handover and checks it with kho-sim
// inspect, against the committed captures and with kho-sim's model, runs
// the kernel's luo_kexec_simple and kho-sim's own 7.2 round trip on that
// kernel; beside them it hops between the two kernels with the selftest
// (hops). The timings and hop verdicts go to out/realkernel.txt.
func TestRealKernel(t *testing.T) {
	h := optIn(t, "build Linux 7.2 and 7.3 kernels with LUO and boot them in QEMU")
	repo := h.repo
	for _, tool := range []string{"go", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			h.missing("%s not found: %v", tool, err)
		}
	}

	start := time.Now()
	// One kernel build at a time: each takes both CPUs.
	var kernels []realKernel
	for _, s := range series() {
		kernels = append(kernels, h.buildKernel(s))
	}
	khoSim := h.goBuild("./cmd/kho-sim", "kho-sim")
	selftestInit := h.goBuild("./guest/luo/selftest", "selftest-init")

	// Each lane boots one single-vCPU QEMU at a time: with -parallel 2
	// (GOMAXPROCS on these 2-core machines) two lanes share the machine.
	reports := make([]string, len(kernels)+1)
	t.Run("lanes", func(t *testing.T) {
		for i, k := range kernels {
			t.Run(k.series, func(t *testing.T) {
				t.Parallel()
				reports[i] = h.sub(t, k.series).lanes(k, khoSim, selftestInit)
			})
		}
		t.Run("hops", func(t *testing.T) {
			t.Parallel()
			reports[len(kernels)] = h.sub(t, "hops").hops(kernels, selftestInit)
		})
	})
	report := strings.Join(reports, "\n")
	report += fmt.Sprintf("\nwhole test %.1f s (lanes side by side)\n", time.Since(start).Seconds())
	t.Log("\n" + report)
	if err := os.MkdirAll(filepath.Join(repo, "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "out", "realkernel.txt"), []byte(report), 0o644); err != nil {
		t.Fatal(err)
	}
}

// lanes runs every lane on one kernel and returns its timing table.
func (h *harness) lanes(k realKernel, khoSim, selftestInit string) string {
	start := time.Now()
	h.captureAndInspect(k, khoSim)
	captureTime := time.Since(start)

	selftestCPIO := h.selftestInitramfs(selftestInit, k)
	khoSimCPIO := h.khoSimInitramfs(k)

	var selftestRuns, khoSimRuns []roundTrip
	for i := range runsEach {
		selftestRuns = append(selftestRuns, h.bootSelftest(i, k.bzImage, selftestCPIO))
		khoSimRuns = append(khoSimRuns, h.bootKhoSim(i, k.bzImage, khoSimCPIO))
	}
	report := comparison(k.release+" (Debian "+k.version+")", selftestRuns, khoSimRuns)
	return report + fmt.Sprintf("\nkernel build or reuse %.1f s, capture and inspect %.1f s, all lanes on %s %.1f s\n",
		k.build.Seconds(), captureTime.Seconds(), k.series, time.Since(start).Seconds())
}

// run runs a command in the repository with the host's GOFLAGS cleared
// (a -race from the caller must not reach guest builds) and returns its
// stdout; a failure ends the test with its output.
func (h *harness) run(what string, name string, args ...string) string {
	h.t.Helper()
	return h.runEnv(what, nil, name, args...)
}

func (h *harness) runEnv(what string, env []string, name string, args ...string) string {
	h.t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = h.repo
	cmd.Env = append(append(os.Environ(), "GOFLAGS="), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t := time.Now()
	if err := cmd.Run(); err != nil {
		h.t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", what, err, tail(stdout.String(), 40), tail(stderr.String(), 40))
	}
	h.t.Logf("%s: %.1f s", what, time.Since(t).Seconds())
	return stdout.String()
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// buildKernel runs scripts/luo-kernel/build.sh for a series: it reuses
// the cached kernel or downloads and builds it, with its selftest.
func (h *harness) buildKernel(series string) realKernel {
	start := time.Now()
	out := h.run("scripts/luo-kernel/build.sh "+series, "bash", filepath.Join(h.repo, "scripts/luo-kernel/build.sh"), series)
	k := realKernel{series: series, bzImage: strings.TrimSpace(tail(out, 1)), build: time.Since(start)}
	if _, err := os.Stat(k.bzImage); err != nil {
		h.t.Fatalf("build.sh %s printed %q: %v", series, k.bzImage, err)
	}
	// build.sh keeps make kernelrelease beside the bzImage.
	release, err := os.ReadFile(filepath.Join(filepath.Dir(k.bzImage), "release"))
	if k.release = strings.TrimSpace(string(release)); err != nil || !strings.HasPrefix(k.release, series+".") {
		h.t.Fatalf("release of %s: %q (%v), want %s.N", k.bzImage, k.release, err, series)
	}
	// <cache>/<version>/<config key>/bzImage
	k.version = filepath.Base(filepath.Dir(filepath.Dir(k.bzImage)))
	k.selftest = filepath.Join(filepath.Dir(k.bzImage), "luo_kexec_simple")
	if _, err := os.Stat(k.selftest); err != nil {
		h.t.Fatalf("the %s tree built no luo_kexec_simple: %v", series, err)
	}
	return k
}

// goBuild builds a static binary of a command package of the repository.
func (h *harness) goBuild(pkg, name string) string {
	out := filepath.Join(h.tmp, name)
	h.runEnv("go build "+pkg, []string{"CGO_ENABLED=0"}, "go", "build", "-trimpath", "-o", out, pkg)
	return out
}

// captureAndInspect runs scripts/luo-kernel/capture.sh twice into
// temporary directories. The first run retrieves and finishes in the
// second kernel; its handover is the RAM image taken at the kexec. The
// second (LUO_INCOMING=dump) boots the second kernel with LUO off, so the
// guest reads the whole handover through /dev/mem: the radix tree on the
// outgoing side, everything else on the incoming side. Each is checked:
// kho-sim inspect decodes it without a finding, it carries the same FLB
// page, sessions and files as the committed 7.2 capture (a drift of the
// real kernel, or a 7.3 ABI that is not 7.2's, fails here) and as the
// committed capture of its own series, and for the /dev/mem one, kho-sim's
// own model writes the same FLB page, luo_ser and blocks (internal/sim's
// TestRealKernel72 tests, pointed at it).
func (h *harness) captureAndInspect(k realKernel, khoSim string) {
	t := h.t
	var committed []handover
	for _, s := range []string{"7.2", k.series} {
		path := filepath.Join(h.repo, "testdata/real-"+s, "handover.txt")
		if _, err := os.Stat(path); err != nil && s != "7.2" {
			t.Logf("no committed %s capture (%v): compared with 7.2's only", s, err)
			continue
		}
		committed = append(committed, loadHandover(t, path))
		if s == k.series {
			break
		}
	}

	dir := h.capture(k, "retrieve", "")
	// What the guest read through /dev/mem after the kexec equals the RAM
	// image taken at the kexec, except the LUO blob the new kernel freed.
	h.checkDiff(dir, true)
	fresh := loadHandover(t, filepath.Join(dir, "handover.txt"))
	h.inspect(khoSim, "RAM image at the kexec", fresh)
	for _, c := range committed {
		compareHandovers(t, c, fresh)
	}

	dir = h.capture(k, "dump", "dump")
	// With LUO off nothing was freed: every page the guest read through
	// /dev/mem equals the RAM image.
	h.checkDiff(dir, false)
	guestDump := filepath.Join(dir, "guest-dump.txt")
	devmem := loadHandover(t, guestDump)
	h.inspect(khoSim, "/dev/mem on both sides", devmem)
	for _, c := range committed {
		compareHandovers(t, c, devmem)
	}
	h.runEnv("kho-sim's model against the /dev/mem handover", []string{"KHO_SIM_REAL_HANDOVER=" + guestDump, "KHO_SIM_REAL_RELEASE=" + k.release},
		"go", "test", "-count=1", "-run", "^TestReal(Kernel|Linux)72", "./internal/sim/")
}

// capture runs capture.sh with LUO_INCOMING=incoming into a directory of
// the test named after the run, demands the guest's TEST PASSED and
// returns the directory. The whole serial console goes to
// capture-NAME.log in the log directory.
func (h *harness) capture(k realKernel, name, incoming string) string {
	t := h.t
	dir := filepath.Join(h.tmp, "capture-"+name)
	h.runEnv("scripts/luo-kernel/capture.sh ("+name+")", []string{
		requireEnv + "=" + k.bzImage, "LUO_INCOMING=" + incoming,
		"CAPTURE_CONSOLE=" + filepath.Join(h.logDir, "capture-"+name+".log"),
	}, "bash", filepath.Join(h.repo, "scripts/luo-kernel/capture.sh"), dir)
	console, err := os.ReadFile(filepath.Join(dir, "console.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(console, []byte("LUO-GUEST stage=2: TEST PASSED")) {
		t.Fatalf("capture %s: guest/luo did not print TEST PASSED:\n%s", name, tail(string(console), 40))
	}
	return dir
}

// checkDiff reads the capture's comparison of the guest's /dev/mem pages
// with the RAM image and fails on any difference a kexec does not explain.
func (h *harness) checkDiff(dir string, luoFreed bool) {
	diff, err := os.ReadFile(filepath.Join(dir, "guest-vs-kexec.txt"))
	if err != nil {
		h.t.Fatal(err)
	}
	if bad := unexpectedDifferences(string(diff), luoFreed); len(bad) > 0 || !bytes.Contains(diff, []byte("identical: ")) {
		h.t.Errorf("%s: the guest's /dev/mem dump after the kexec differs from the RAM image (%q):\n%s", filepath.Base(dir), bad, diff)
	}
}

// inspect runs kho-sim inspect, text and JSON, on a handover laid out in
// a sparse memory image and demands the 7.2 generation, the three test
// FLBs and no finding.
func (h *harness) inspect(khoSim, what string, ho handover) {
	t := h.t
	image, root := sparseImage(t, ho, filepath.Join(h.tmp, fmt.Sprintf("inspect-%d.mem", time.Now().UnixNano())))
	args := []string{"inspect", "--image", image, "--base", "0", "--root", fmt.Sprintf("%#x", root)}
	text := h.run("kho-sim inspect ("+what+")", khoSim, args...)
	squeezed := squeeze(text)
	musts := []string{`generation 7.2 (KHO "kho-v4", LUO "luo-v5")`, "== findings: 0 =="}
	for i := range testFLBs {
		musts = append(musts, fmt.Sprintf("%q %#x 4", fmt.Sprintf("liveupdate-test-flb-v%d", i), uint64(testFLBData)+uint64(i)))
	}
	failed := false
	for _, m := range musts {
		if !strings.Contains(squeezed, squeeze(m)) {
			t.Errorf("kho-sim inspect of the %s lacks %q", what, m)
			failed = true
		}
	}
	var doc struct {
		Findings []json.RawMessage `json:"findings"`
	}
	if err := json.Unmarshal([]byte(h.run("kho-sim inspect --json ("+what+")", khoSim, append(args, "--json")...)), &doc); err != nil || doc.Findings == nil || len(doc.Findings) != 0 {
		t.Errorf("kho-sim inspect --json of the %s: %v, findings %s", what, err, doc.Findings)
		failed = true
	}
	if failed {
		t.Logf("kho-sim inspect (%s):\n%s", what, text)
	}
}

// unexpectedDifferences returns the "differs:" lines of extract's
// comparison other than those a kexec explains: the scratch array (a kexec
// segment, copied into place after the image was taken) and, when luoFreed,
// the LUO blob (a kernel with LUO on frees it before /init).
func unexpectedDifferences(report string, luoFreed bool) []string {
	var bad []string
	for _, line := range strings.Split(report, "\n") {
		if !strings.HasPrefix(line, "differs:") || strings.Contains(line, "(scratch array: ") {
			continue
		}
		if luoFreed && strings.Contains(line, `(subtree "LUO", LUO blob `) {
			continue
		}
		bad = append(bad, line)
	}
	return bad
}

// handover is a parsed dump and its decoded handover.
type handover struct {
	dump *kho.Dump
	h    *luo.Handover
}

func loadHandover(t *testing.T, path string) handover {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := kho.ParseDump(f)
	if err != nil || d.Setup == nil {
		t.Fatalf("%s: %v (setup %v)", path, err, d != nil && d.Setup != nil)
	}
	h, err := luo.Read(d.Pages, d.Setup.FDTAddr)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if h.FLB == nil || h.Sessions == nil {
		t.Fatalf("%s: no LUO sessions or no FLB page", path)
	}
	return handover{dump: d, h: h}
}

// sparseImage writes the handover's pages into a sparse raw memory image
// whose byte 0 is physical address 0 and returns it with the root FDT's
// address (as cmd/kho-sim's inspect tests do with the committed dump).
func sparseImage(t *testing.T, ho handover, path string) (string, uint64) {
	t.Helper()
	var end uint64
	for _, b := range ho.h.In.Blocks() {
		end = max(end, b.End())
	}
	end = (end + 1<<20 - 1) &^ (1<<20 - 1)
	img, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if err := img.Truncate(int64(end)); err != nil {
		t.Fatal(err)
	}
	for _, pa := range ho.dump.Pages.Addresses() {
		if pa < end { // beyond: the scratch array, not part of the handover
			if _, err := img.WriteAt(ho.dump.Pages.Page(pa), int64(pa)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := img.Close(); err != nil {
		t.Fatal(err)
	}
	return path, ho.dump.Setup.FDTAddr
}

// compareHandovers demands the same FLB page byte for byte and the same
// sessions and files (names, handlers, tokens) in both captures; the
// addresses may differ.
func compareHandovers(t *testing.T, committed, fresh handover) {
	t.Helper()
	want := committed.dump.Pages.Page(committed.h.FLB.PA)
	got := fresh.dump.Pages.Page(fresh.h.FLB.PA)
	if !bytes.Equal(got, want) {
		t.Errorf("the fresh FLB page at %#x differs from the committed one at %#x", fresh.h.FLB.PA, committed.h.FLB.PA)
	}
	if n := len(fresh.h.FLB.Entries); n != testFLBs {
		t.Errorf("%d FLBs, want %d", n, testFLBs)
	}
	for i, e := range fresh.h.FLB.Entries {
		if wantName := fmt.Sprintf("liveupdate-test-flb-v%d", i); e.Name != wantName || e.Data != uint64(testFLBData)+uint64(i) || e.Count != 4 {
			t.Errorf("FLB %d: %q data %#x count %d, want %q %#x 4", i, e.Name, e.Data, e.Count, wantName, uint64(testFLBData)+uint64(i))
		}
	}
	if g, w := sessionSummary(fresh.h), sessionSummary(committed.h); g != w {
		t.Errorf("sessions and files differ:\nfresh:\n%s\ncommitted:\n%s", g, w)
	}
}

// sessionSummary lists sessions and files without their addresses.
func sessionSummary(h *luo.Handover) string {
	var b strings.Builder
	for _, s := range h.Sessions.Sessions {
		fmt.Fprintf(&b, "session %q: %d files\n", s.Name, s.Count)
		for _, f := range s.Files {
			fmt.Fprintf(&b, "  %q token %#x\n", f.Compatible, f.Token)
		}
	}
	return b.String()
}

// squeeze collapses runs of white space, so that column widths do not
// matter to a match.
func squeeze(s string) string { return strings.Join(strings.Fields(s), " ") }

// selftestInitramfs packs guest/luo/selftest (bin) as /init with the
// kernel and its luo_kexec_simple.
func (h *harness) selftestInitramfs(bin string, k realKernel) string {
	out := filepath.Join(h.tmp, "selftest.cpio")
	h.run("selftest pack", bin, "pack", "-kernel", k.bzImage, "-selftest", k.selftest, "-o", out)
	return out
}

// bootSelftest runs luo_kexec_simple's two stages across a kexec.
func (h *harness) bootSelftest(run int, kernel, initramfs string) roundTrip {
	lines := h.boot(fmt.Sprintf("selftest-%d", run+1), kernel, initramfs, baseAppend+" kho=on liveupdate=on")
	if !containsLine(lines, selftestOwnPass) {
		h.t.Fatalf("luo_kexec_simple did not print %q", selftestOwnPass)
	}
	rt, err := analyze(lines, selftestPass, 2)
	if err != nil {
		h.t.Fatalf("selftest run %d: %v", run+1, err)
	}
	return rt
}

// bootKhoSim runs kho-sim's own two-boot round trip writing 7.2 handovers,
// and judges its KTAP with e2e/ktapverdict.
func (h *harness) bootKhoSim(run int, kernel, initramfs string) roundTrip {
	name := fmt.Sprintf("kho-sim-%d", run+1)
	lines := h.boot(name, kernel, initramfs, baseAppend+` memmap=16M$0x10000000 kho_sim.hops=1 kho_sim.abi=7.2`)
	h.run("ktapverdict "+name, "go", "run", "./e2e/ktapverdict", "-boots", "2", filepath.Join(h.logDir, name+".log"))
	rt, err := analyze(lines, khoSimDone, 2)
	if err != nil {
		h.t.Fatalf("kho-sim run %d: %v", run+1, err)
	}
	return rt
}

func containsLine(lines []consoleLine, s string) bool {
	for _, l := range lines {
		if strings.Contains(l.Text, s) {
			return true
		}
	}
	return false
}

// boot runs QEMU (TCG, 1 GiB, one vCPU, as scripts/qemu/run.sh and
// capture.sh do) until the guest resets or halts, timing every console line on the
// host. The console goes to NAME.log in the log directory (under out/); on
// failure its tail is shown.
func (h *harness) boot(name, kernel, initramfs, appendArgs string) []consoleLine {
	t := h.t
	lines, err := h.bootWith(name, kernel, initramfs, appendArgs, bootOptions{})
	if err != nil {
		t.Fatalf("%s: %v; console:\n%s", name, err, tailLines(lines, 30))
	}
	return lines
}

// bootOptions vary one QEMU run of bootWith.
type bootOptions struct {
	// memory is QEMU's -m (default 1G).
	memory string
	// timeout is the watchdog (default bootTimeout); when it fires the
	// run is ended and bootWith returns errWatchdog.
	timeout time.Duration
	// stop, if set, is shown every console line; once it returns true
	// QEMU is ended and the run counts as complete.
	stop func(line string) bool
}

// errWatchdog is bootWith's error when the watchdog ended the run.
var errWatchdog = errors.New("watchdog: QEMU did not end in time")

// bootWith is boot with options; it returns the console and, instead of
// failing the test, what went wrong.
func (h *harness) bootWith(name, kernel, initramfs, appendArgs string, o bootOptions) ([]consoleLine, error) {
	t := h.t
	if o.memory == "" {
		o.memory = "1G"
	}
	if o.timeout == 0 {
		o.timeout = bootTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemuBin, "-accel", "tcg", "-m", o.memory, "-smp", "1", "-nographic", "-no-reboot",
		"-kernel", kernel, "-initrd", initramfs, "-append", appendArgs)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	logPath := filepath.Join(h.logDir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: start QEMU: %v", name, err)
	}
	pw.Close()
	ended := false
	lines, readErr := readConsole(pr, start, logFile, func(line string) {
		// No ACPI in this kernel: a power-off (kho-sim's last boot)
		// only halts, and QEMU would wait for ever.
		if !ended && (strings.Contains(line, haltedText) || o.stop != nil && o.stop(line)) {
			ended = true
			cmd.Process.Kill()
		}
	})
	pr.Close()
	waitErr := cmd.Wait()
	if ended {
		waitErr = nil
	}
	t.Logf("%s: QEMU ended after %.1f s (ended by the console %v, %v)", name, time.Since(start).Seconds(), ended, waitErr)
	if ctx.Err() != nil {
		return lines, errWatchdog
	}
	if err := errors.Join(readErr, waitErr); err != nil {
		return lines, fmt.Errorf("QEMU: %w", err)
	}
	return lines, nil
}

// readConsole reads QEMU's output line by line with the host time of
// each, copying it to log as it came (ktapverdict reads it) and passing it
// to seen.
func readConsole(r io.Reader, start time.Time, log io.Writer, seen func(string)) ([]consoleLine, error) {
	var lines []consoleLine
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		l := consoleLine{At: time.Since(start), Text: strings.TrimRight(sc.Text(), "\r")}
		lines = append(lines, l)
		seen(l.Text)
		if _, err := fmt.Fprintln(log, l.Text); err != nil {
			return lines, fmt.Errorf("write console log: %w", err)
		}
	}
	if err := sc.Err(); err != nil {
		return lines, fmt.Errorf("read console: %w", err)
	}
	return lines, nil
}

func tailLines(lines []consoleLine, n int) string {
	var b strings.Builder
	for _, l := range lines[max(0, len(lines)-n):] {
		fmt.Fprintf(&b, "%8.3f %s\n", l.At.Seconds(), l.Text)
	}
	return b.String()
}

// comparison formats the timing table: every run of both round trips, the
// best of each and their ratio.
func comparison(kernel string, selftest, khoSim []roundTrip) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Real Linux %s, QEMU TCG, 1 vCPU, 1 GiB, same kernel, same machine, one run (beside the other lanes).\n", kernel)
	fmt.Fprintf(&b, "Seconds on the host's clock from QEMU start: boot 1 to the second kernel's banner, boot 2 from it to the pass line;\n")
	fmt.Fprintf(&b, "init 1/2: the kernel's own timestamp at \"Run /init\" in each boot.\n\n")
	fmt.Fprintf(&b, "%-34s %7s %7s %7s %7s %11s\n", "round trip", "boot 1", "boot 2", "init 1", "init 2", "round trip")
	row := func(label string, rt roundTrip) {
		fmt.Fprintf(&b, "%-34s %7.2f %7.2f %7.2f %7.2f %11.2f\n", label,
			rt.Boots[0].Host.Seconds(), rt.Boots[1].Host.Seconds(), rt.Boots[0].ToInit.Seconds(), rt.Boots[1].ToInit.Seconds(), rt.Total.Seconds())
	}
	for i, rt := range selftest {
		row(fmt.Sprintf("luo_kexec_simple, run %d", i+1), rt)
	}
	for i, rt := range khoSim {
		row(fmt.Sprintf("kho-sim (abi 7.2, 1 hop), run %d", i+1), rt)
	}
	bs, bk := best(selftest), best(khoSim)
	row("luo_kexec_simple, best", bs)
	row("kho-sim, best", bk)
	fmt.Fprintf(&b, "%-34s %7.2f %7.2f %7s %7s %11.2f\n", "ratio kho-sim / selftest (best)",
		bk.Boots[0].Host.Seconds()/bs.Boots[0].Host.Seconds(), bk.Boots[1].Host.Seconds()/bs.Boots[1].Host.Seconds(), "", "",
		bk.Total.Seconds()/bs.Total.Seconds())
	return b.String()
}

// best returns the run with the shortest round trip.
func best(runs []roundTrip) roundTrip {
	b := runs[0]
	for _, r := range runs[1:] {
		if r.Total < b.Total {
			b = r
		}
	}
	return b
}

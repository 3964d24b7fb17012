package realkernel

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The real-consumer case's lines: lib/tests/liveupdate.c's and kho-sim's.
const (
	flbFound        = ": found flb data from the previous boot"
	flbFinished     = ": finish was triggered"
	consumerDone    = "kho-sim consumer: DONE: "
	consumerFailed  = "kho-sim consumer: FAILED"
	consumerNotOK   = "kho-sim consumer: not ok"
	consumerCase    = "real-consumer"
	consumerAppend  = " kho_sim.hops=1 kho_sim.abi=7.2 kho_sim.real_kho=1 kho_sim.scenario=real-consumer"
	consumerMemfdOK = "kho-sim consumer: ok: "
)

var handedNumberRE = regexp.MustCompile(`(?m)# handover generation .*, liveupdate number ([0-9]+)$`)

// TestRealConsumer boots stock Debian 6.1 with kho-sim's initramfs and the
// real-consumer scenario: kho-sim preserves two sessions of memfd-v2 files
// (multi-folio with a position, sparse, sealed, empty) under the three
// liveupdate test FLBs, writes its 7.2 handover and kexec_load()s the real
// 7.2 kernel. There kho-sim (kho_sim.consumer=1) retrieves every session
// and memfd through /dev/liveupdate, compares every byte, the size, the
// position and the seals with what it wrote, and finishes the sessions.
// It runs on the real 7.2 and 7.3 kernels. The serial log, kept as
// out/real-consumer-SERIES.log, must show the kernel
// accepting the handover with the liveupdate number kho-sim wrote, every
// test FLB found and finished, and no ERROR line.
func TestRealConsumer(t *testing.T) {
	mode := os.Getenv(requireEnv)
	switch mode {
	case "required", "1":
	case "":
		t.Skipf("set %s=1 (or =required) to hand kho-sim's memfds and test FLBs to a real Linux 7.2 kernel", requireEnv)
	default:
		t.Fatalf("%s=%q: want 1 or required", requireEnv, mode)
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, required: mode == "required", repo: repo, tmp: t.TempDir()}
	h.logDir = h.tmp // boot writes there; keepLog copies the log to out/
	if _, err := exec.LookPath(qemuBin); err != nil {
		h.missing("%s not found: %v", qemuBin, err)
	}
	stock := h.stockKernel()
	outDir := filepath.Join(repo, "out")
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Both real kernels hand over and receive the same ABI (7.3.4's
	// luo, memfd and kexec_handover ABI headers are 7.2.13's).
	for _, series := range []string{"7.2", "7.3"} {
		t.Run(series, func(t *testing.T) {
			h := &harness{t: t, required: h.required, repo: repo, tmp: h.tmp, logDir: h.tmp}
			h.realConsumer(stock, series, outDir)
		})
	}
}

// realConsumer is TestRealConsumer on one real kernel: the log is
// out/real-consumer-SERIES.log, the timings out/real-consumer-SERIES.txt.
func (h *harness) realConsumer(stock, series, outDir string) {
	t := h.t
	name := consumerCase + "-" + series
	next := h.buildKernel(series).bzImage
	cpio := filepath.Join(h.tmp, name+".cpio")
	h.run("initramfs/build.sh", "bash", filepath.Join(h.repo, "initramfs/build.sh"), cpio, next)
	lines := h.boot(name, stock, cpio, kexecAppend+consumerAppend)
	keepLog(t, filepath.Join(h.tmp, name+".log"), filepath.Join(outDir, name+".log"))
	texts := make([]string, len(lines))
	for i, l := range lines {
		texts[i] = l.Text
	}
	all := strings.Join(texts, "\n")
	for _, w := range []string{"kho-sim: real KHO kernel loaded", khoFound, luoRetrieved, consumerDone} {
		if !strings.Contains(all, w) {
			t.Errorf("the serial log lacks %q", w)
		}
	}
	for _, a := range []string{khoDisabled, consumerFailed, consumerNotOK, "ERROR"} {
		if strings.Contains(all, a) {
			t.Errorf("the serial log has %q", a)
		}
	}
	wrote := handedNumberRE.FindStringSubmatch(all)
	got := luoNumberRE.FindStringSubmatch(all)
	if wrote == nil || got == nil || got[1] != wrote[1] {
		t.Errorf("the %s kernel reported liveupdate number %v, kho-sim wrote %v", series, got, wrote)
	}
	for i := range testFLBs {
		name := fmt.Sprintf("liveupdate-test-flb-v%d", i)
		for _, w := range []string{name + flbFound, name + flbFinished} {
			if !strings.Contains(all, w) {
				t.Errorf("the serial log lacks %q", w)
			}
		}
	}
	// Every memfd the scenario declares came back as written.
	if n, s := strings.Count(all, consumerMemfdOK+"kho-sim-"), strings.Count(all, consumerMemfdOK+"session "); n != 4 || s != 2 {
		t.Errorf("%d memfds and %d sessions ok, want 4 and 2", n, s)
	}
	if t.Failed() {
		t.Logf("console:\n%s", tailLines(lines, 80))
		return
	}
	t.Logf("%s: %s", name, kexecTimings(lines))
	if err := os.WriteFile(filepath.Join(outDir, name+".txt"), []byte(name+" "+kexecTimings(lines)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

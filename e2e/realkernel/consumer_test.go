package realkernel

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
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

// The loop's end: after the consumer boot, kho_sim.then hands the machine
// to guest/luo (as loopGuest), which preserves memfds through the same
// real kernel's /dev/liveupdate and kexecs it with luo_incoming=dump; the
// boot after reads that kernel's handover through /dev/mem and dumps it.
const (
	loopGuest     = "luo"
	loopAppend    = ` kho_sim.then="/` + loopGuest + ` boot -kernel /` + nextKernelRecord + `" luo_incoming=dump`
	loopHandedTo  = "kho-sim consumer: handing the machine to"
	loopPreserved = "LUO-GUEST stage=1: preserved memfd"
	loopPassed    = "LUO-GUEST stage=2: TEST PASSED"
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
	h := optIn(t, "hand kho-sim's memfds and test FLBs to a real Linux 7.2 kernel")
	repo := h.repo
	stock := h.stockKernel()
	outDir := filepath.Join(repo, "out")
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Both real kernels hand over and receive the same ABI (7.3.4's
	// luo, memfd and kexec_handover ABI headers are 7.2.13's).
	for _, series := range []string{"7.2", "7.3"} {
		t.Run(series, func(t *testing.T) {
			h := &harness{t: t, required: h.required, repo: repo, tmp: t.TempDir(), rootTmp: h.rootTmp, initramfs: h.initramfs}
			h.logDir = h.tmp
			h.realConsumer(stock, series, outDir)
		})
	}
}

// realConsumer is TestRealConsumer on one real kernel: the log is
// out/real-consumer-SERIES.log, the timings out/real-consumer-SERIES.txt.
func (h *harness) realConsumer(stock, series, outDir string) {
	t := h.t
	name := consumerCase + "-" + series
	k := h.buildKernel(series)
	// kho-sim's initramfs for this kernel, and guest/luo beside it for the
	// boot after the consumer's.
	cpio := filepath.Join(h.tmp, name+".cpio")
	if err := addToInitramfs(h.khoSimInitramfs(k), cpio, map[string]string{loopGuest: h.goBuild("./guest/luo", "luo")}); err != nil {
		t.Fatal(err)
	}
	lines := h.boot(name, stock, cpio, kexecAppend+consumerAppend+loopAppend)
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
	h.closeTheLoop(k, filepath.Join(outDir, name+".log"), wrote[1])
	t.Logf("%s: %s", name, kexecTimings(lines))
	if err := os.WriteFile(filepath.Join(outDir, name+".txt"), []byte(name+" "+kexecTimings(lines)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// closeTheLoop checks the boots after the consumer's in its serial log:
// the real kernel that took kho-sim's handover preserved state of its own
// and handed it over, and that handover, read through /dev/mem in the
// next boot, is what kho-sim inspect and kho-sim's model expect of a real
// 7.2 kernel (as the capture lane's), with the liveupdate number the real
// kernel counted on from the one kho-sim wrote.
func (h *harness) closeTheLoop(k realKernel, log, wroteNumber string) {
	t := h.t
	console, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{loopHandedTo, loopPreserved, loopPassed} {
		if !bytes.Contains(console, []byte(w)) {
			t.Fatalf("closing the loop: the serial log lacks %q", w)
		}
	}
	ho := loadHandover(t, log)
	wrote, err := strconv.ParseUint(wroteNumber, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if got := ho.h.LiveupdateNumber; got != wrote+1 {
		t.Errorf("closing the loop: the %s kernel handed over liveupdate number %d, want %d (kho-sim wrote %d)", k.series, got, wrote+1, wrote)
	}
	if m := ho.h.KexecMetadata; m == nil || m.PreviousRelease != k.release {
		t.Errorf("closing the loop: kexec-metadata %+v, want previous_release %q", m, k.release)
	} else {
		t.Logf("closing the loop: the %s kernel's handover: liveupdate number %d, kexec-metadata kexec_count %d, %d sessions", k.series, ho.h.LiveupdateNumber, m.KexecCount, len(ho.h.Sessions.Sessions))
	}
	khoSim := h.goBuild("./cmd/kho-sim", "kho-sim")
	h.inspect(khoSim, "real kernel's handover after kho-sim's", ho)
	compareHandovers(t, loadHandover(t, filepath.Join(h.repo, "testdata/real-7.2", "handover.txt")), ho)
	h.runEnv("kho-sim's model against the real kernel's handover after kho-sim's", []string{"KHO_SIM_REAL_HANDOVER=" + log, "KHO_SIM_REAL_RELEASE=" + k.release, "KHO_SIM_REAL_NUMBER=" + strconv.FormatUint(wrote+1, 10)},
		"go", "test", "-count=1", "-run", "^TestReal(Kernel|Linux)72", "./internal/sim/")
}

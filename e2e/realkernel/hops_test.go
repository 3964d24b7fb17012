package realkernel

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Hops between the real kernels with the kernel's own luo_kexec_simple
// (guest/luo/selftest's luo_kernel=/luo_next=): stage 1 on one kernel,
// stage 2 on the next, so each hop is judged by the selftest built from
// the receiving kernel's tree reading what the other kernel handed over.
// The kernel's own runners (vmtest.sh) boot one image for both stages.

// hopChain is the order of the kernels of one QEMU run: 7.2 -> 7.3 -> 7.2,
// both directions.
func hopChain() []string { return []string{"7.2", "7.3", "7.2"} }

// Lines a hop is judged by.
const (
	// khoFound is KHO's line when kho_populate accepted the handover.
	khoFound = "KHO: found kexec handover data."
	// khoExecFrom is KHO's line on the kexec-metadata it received: the
	// previous kernel's release and the kexec count (kexec_handover.c).
	khoExecFrom = "KHO: exec from: %s (count %d)"
	// luoRetrieved is LUO's line when it accepted the previous kernel's
	// state (kernel/liveupdate/luo_core.c), followed by the number.
	luoRetrieved = "luo: Retrieved live update data, liveupdate number: "
	// selftestStage1 is the wrapper's line after --stage 1 exited 0
	// ("LUO-SELFTEST stage=1: /luo_kexec_simple-7.2 -s 1 exited 0 ...").
	selftestStage1 = "LUO-SELFTEST stage=1: /luo_kexec_simple-%s -s 1 exited 0"
)

// kernelTrouble are console lines no boot of a hop may show: with
// CONFIG_BUG a WARN_ON prints "WARNING:" after a cut-here line.
func kernelTrouble() []string {
	return []string{"------------[ cut here ]------------", "WARNING:", "BUG:", "Kernel panic", "TEST FAILED", "Oops"}
}

// hops runs the chain in one QEMU, keeps its serial log and each boot's
// part of it under out/realkernel/hops/, and judges every hop.
func (h *harness) hops(kernels []realKernel, selftestInit string) string {
	t := h.t
	bySeries := map[string]realKernel{}
	args := []string{"pack", "-o", filepath.Join(h.tmp, "hops.cpio")}
	for _, k := range kernels {
		bySeries[k.series] = k
		args = append(args, "-hop", k.series+"="+k.bzImage+","+k.selftest)
	}
	h.run("selftest pack (hops)", selftestInit, args...)
	chain := hopChain()
	var want []realKernel
	for _, s := range chain {
		k, ok := bySeries[s]
		if !ok {
			t.Fatalf("hop chain %q: no %s kernel built", chain, s)
		}
		want = append(want, k)
	}

	name := strings.Join(chain, "-")
	appendArgs := fmt.Sprintf("%s kho=on liveupdate=on luo_kernel=%s luo_next=%s", baseAppend, chain[0], strings.Join(chain[1:], ","))
	lines := h.boot(name, want[0].bzImage, filepath.Join(h.tmp, "hops.cpio"), appendArgs)
	if len(lines) == 0 {
		t.Fatalf("%s: QEMU printed nothing", name)
	}
	boots := splitBoots(lines)
	for i, b := range boots {
		path := filepath.Join(h.logDir, fmt.Sprintf("%s.boot%d-%s.log", name, i+1, chain[min(i, len(chain)-1)]))
		if err := os.WriteFile(path, []byte(b.text()), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "Hops between real kernels with luo_kexec_simple (stage 1 on the first, stage 2 on the second), one QEMU run, %s:\n", strings.Join(chain, " -> "))
	failed := false
	for i := 1; i < len(want); i++ {
		v := judgeHop(boots, i, want[i-1], want[i])
		verdict := "PASS"
		if v != nil {
			verdict, failed = "FAIL: "+v.Error(), true
			t.Errorf("hop %d, %s -> %s: %v", i, want[i-1].release, want[i].release, v)
		}
		fmt.Fprintf(&b, "  hop %d  %-8s -> %-8s  %s\n", i, want[i-1].release, want[i].release, verdict)
	}
	fmt.Fprintf(&b, "  %d boots, %.2f s of QEMU in all; host seconds per boot, banner to banner:", len(boots), lines[len(lines)-1].At.Seconds())
	for i, bt := range boots {
		end := lines[len(lines)-1].At
		if i+1 < len(boots) {
			end = boots[i+1].lines[0].At
		}
		fmt.Fprintf(&b, " %.2f", (end - bt.lines[0].At).Seconds())
	}
	b.WriteString("\n")
	if failed {
		t.Logf("console:\n%s", tailLines(lines, 60))
	}
	return b.String()
}

// consoleBoot is one kernel's part of a console: from its banner to the
// next banner.
type consoleBoot struct {
	banner string
	lines  []consoleLine
}

func (b consoleBoot) text() string {
	var s strings.Builder
	for _, l := range b.lines {
		s.WriteString(l.Text)
		s.WriteByte('\n')
	}
	return s.String()
}

func (b consoleBoot) contains(sub string) bool { return containsLine(b.lines, sub) }

// splitBoots cuts a console at the kernel banners; what comes before the
// first (firmware) belongs to no boot.
func splitBoots(lines []consoleLine) []consoleBoot {
	var boots []consoleBoot
	for _, l := range lines {
		if i := strings.Index(l.Text, bannerText); i >= 0 {
			boots = append(boots, consoleBoot{banner: l.Text[i:]})
		}
		if len(boots) > 0 {
			boots[len(boots)-1].lines = append(boots[len(boots)-1].lines, l)
		}
	}
	return boots
}

var (
	errHopBoots   = errors.New("boot missing")
	errHopKernel  = errors.New("wrong kernel")
	errHopStage1  = errors.New("stage 1 did not pass")
	errHopKHO     = errors.New("KHO did not accept the handover")
	errHopLUO     = errors.New("LUO did not retrieve the previous kernel's state")
	errHopMeta    = errors.New("the kexec-metadata does not name the previous kernel")
	errHopStage2  = errors.New("stage 2 did not pass")
	errHopTrouble = errors.New("kernel trouble on the console")
)

// judgeHop judges hop i of a chain (boot i-1 -> boot i): stage 1 of
// from's luo_kexec_simple passed on boot i-1; boot i runs to's kernel,
// whose KHO accepted the handover and read a kexec-metadata naming from's
// release and kexec count i, whose LUO retrieved the state with
// liveupdate number i (one per kexec since the cold boot) and whose
// luo_kexec_simple passed stage 2; neither boot shows a WARN, BUG, oops
// or panic.
func judgeHop(boots []consoleBoot, i int, from, to realKernel) error {
	if i >= len(boots) {
		return fmt.Errorf("%w: %d boots on the console, hop %d needs %d", errHopBoots, len(boots), i, i+1)
	}
	prev, cur := boots[i-1], boots[i]
	for _, c := range []struct {
		b consoleBoot
		k realKernel
	}{{prev, from}, {cur, to}} {
		if !strings.HasPrefix(c.b.banner, bannerText+c.k.release+" ") {
			return fmt.Errorf("%w: %q, want %s", errHopKernel, c.b.banner, c.k.release)
		}
	}
	if s := fmt.Sprintf(selftestStage1, from.series); !prev.contains(s) {
		return fmt.Errorf("%w on %s: no %q", errHopStage1, from.release, s)
	}
	if !cur.contains(khoFound) {
		return fmt.Errorf("%w: no %q on %s", errHopKHO, khoFound, to.release)
	}
	if n, ok := retrievedNumber(cur); !ok || n != i {
		return fmt.Errorf("%w: %q gave %d (found %v), want %d", errHopLUO, luoRetrieved, n, ok, i)
	}
	if s := fmt.Sprintf(khoExecFrom, from.release, i); !cur.contains(s) {
		return fmt.Errorf("%w: no %q on %s", errHopMeta, s, to.release)
	}
	for _, s := range []string{selftestOwnPass, selftestPass} {
		if !cur.contains(s) {
			return fmt.Errorf("%w on %s: no %q", errHopStage2, to.release, s)
		}
	}
	for _, b := range []consoleBoot{prev, cur} {
		for _, bad := range kernelTrouble() {
			if b.contains(bad) {
				return fmt.Errorf("%w: %q in the boot of %q", errHopTrouble, bad, b.banner)
			}
		}
	}
	return nil
}

// retrievedNumber is the liveupdate number of LUO's "Retrieved" line.
func retrievedNumber(b consoleBoot) (int, bool) {
	for _, l := range b.lines {
		if i := strings.Index(l.Text, luoRetrieved); i >= 0 {
			n, err := strconv.Atoi(strings.TrimSpace(l.Text[i+len(luoRetrieved):]))
			return n, err == nil
		}
	}
	return 0, false
}

package realkernel

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Environment of TestKexecLoad besides KHO_SIM_LUO_KERNEL.
const (
	// envStockKernel names the stock Debian 6.1 bzImage, else the newest
	// in scripts/fetch-kernel.sh's cache (KHO_SIM_CACHE or .cache/kernels).
	envStockKernel = "KHO_SIM_KERNEL"
	envKernelCache = "KHO_SIM_CACHE"
)

// The 7.2 kernel's lines (kernel/liveupdate/kexec_handover.c; khoFound
// and luoRetrieved beside the hops') and the guest's.
const (
	khoDisabled   = "disabling KHO revival"
	guestDone     = "KEXECLOAD-GUEST stage=2: DONE"
	guestRebootAt = "KEXECLOAD-GUEST stage=1: rebooting into the KHO kernel"
	// kexecAppend is the stock kernel's command line: the handover region
	// as scripts/qemu and the other real-kernel boots reserve it.
	kexecAppend = baseAppend + " memmap=16M$0x10000000"
)

var (
	kexecLoadRE  = regexp.MustCompile(`kexec_load took ([0-9.]+) ms`)
	khoSimLoadRE = regexp.MustCompile(`# phase kexec_load \(KHO setup_data\) ([0-9.]+) ms`)
	writtenRE    = regexp.MustCompile(`handover written: root FDT at (0x[0-9a-f]+), liveupdate number ([0-9]+)`)
	kernelTSRE   = regexp.MustCompile(`^\[\s*([0-9]+\.[0-9]+)\]`)
	luoNumberRE  = regexp.MustCompile(regexp.QuoteMeta(luoRetrieved) + `([0-9]+)`)
	scratchRE    = regexp.MustCompile(`scratch \[(0x[0-9a-f]+)-(0x[0-9a-f]+)\];`)
	kernelRE     = regexp.MustCompile(`stage=2: kernel code at \[(0x[0-9a-f]+)-(0x[0-9a-f]+)\]`)
	intactRE     = regexp.MustCompile(`stage=2: preserved root FDT page (0x[0-9a-f]+) intact`)
)

// TestKexecLoad boots stock Debian 6.1 with guest/kexecload, which writes a
// minimal 7.2 handover (kho-v4 root FDT, radix tree, luo-v5 blob) into a
// memmap= region through /dev/mem and kexec_load()s the real Linux 7.2
// kernel with pkg/kexec's LoadKHO: a SETUP_KEXEC_KHO setup_data entry and
// scratch. The 7.2 kernel must accept the handover and report the
// liveupdate number the guest wrote; in the control the root compatible is
// damaged and the kernel must refuse it; a next kernel without KHO must
// boot without it; and kho-sim run with kho_sim.real_kho=1 must get its
// own full 7.2 handover accepted. Serial logs go to out/kexecload-CASE.log,
// timings to out/kexecload.txt.
func TestKexecLoad(t *testing.T) {
	h := optIn(t, "boot Debian 6.1 into a real Linux 7.2 kernel with kexec_load and a KHO handover")
	repo := h.repo
	stock := h.stockKernel()
	next := h.buildKernel("7.2").bzImage
	guest := h.goBuild("./guest/kexecload", "kexecload")
	cpio := filepath.Join(h.tmp, "kexecload.cpio")
	h.run("kexecload pack", guest, "pack", "-kernel", next, "-o", cpio)
	// The same guest kexecs the stock kernel itself, which has no KHO.
	stockCPIO := filepath.Join(h.tmp, "kexecload-stock.cpio")
	h.run("kexecload pack (stock next kernel)", guest, "pack", "-kernel", stock, "-o", stockCPIO)
	// kho-sim's own initramfs, its next kernel the 7.2 one: kho-sim run
	// with kho_sim.real_kho=1 writes its full 7.2 handover (the default
	// scenario's sessions, files and FLBs) and loads the KHO kernel.
	khoSimCPIO := filepath.Join(h.tmp, "kho-sim.cpio")
	h.run("initramfs/build.sh", "bash", filepath.Join(repo, "initramfs/build.sh"), khoSimCPIO, next)
	// The same with the stock kernel as /kernels/stock, picked by
	// kho_sim.kernels=: it has no KHO, and kho-sim's boot in it must say
	// the handover was not taken, and fail.
	khoSimStockCPIO := filepath.Join(h.tmp, "kho-sim-stock.cpio")
	if err := addToInitramfs(khoSimCPIO, khoSimStockCPIO, map[string]string{"kernels/stock": stock}); err != nil {
		t.Fatal(err)
	}
	outDir := filepath.Join(repo, "out")
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		initramfs string
		damage    string
		want      []string // lines that must appear
		absent    []string // lines that must not
	}{
		{"handover", cpio, "", []string{khoFound, luoRetrieved, guestDone}, []string{khoDisabled}},
		{"root-compatible", cpio, "root-compatible", []string{khoDisabled, guestDone}, []string{khoFound, luoRetrieved}},
		// A next kernel without KHO ignores setup_data type 10 and boots
		// without the handover.
		{"next-without-kho", stockCPIO, "", []string{guestDone}, []string{khoFound, khoDisabled, luoRetrieved}},
		// The real kernel accepts kho-sim's full handover. kho-sim's next
		// boot in it cannot map the region yet (its pages are RAM there).
		{"kho-sim-run", khoSimCPIO, "", []string{"kho-sim: real KHO kernel loaded", khoFound, luoRetrieved}, []string{khoDisabled}},
		// kho-sim's full handover to a kernel without KHO: it boots as if
		// none was given, and kho-sim's boot there fails, saying so.
		{"kho-sim-run-next-without-kho", khoSimStockCPIO, "", []string{"kho-sim: real KHO kernel loaded", "did not take kho-sim's handover"},
			[]string{khoFound, luoRetrieved, "every byte as kho-sim wrote it"}},
		// Scratch on the handover region: one line, before kho-sim writes
		// anything, and no kexec.
		{"kho-sim-scratch-on-region", khoSimCPIO, "", []string{"kho-sim run: --real-kho: kexec: scratch area 0 [0xc000000-0x13ffffff] overlaps the handover"},
			[]string{"real KHO kernel loaded", "ok 1 KHO set up", "Linux version 7.2"}},
	}
	var report strings.Builder
	fmt.Fprintf(&report, "Debian %s -> %s by kexec_load with SETUP_KEXEC_KHO, QEMU TCG, 1 vCPU, 1 GiB\n",
		filepath.Base(stock), filepath.Base(filepath.Dir(next)))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &harness{t: t, required: h.required, repo: repo, tmp: h.tmp, logDir: h.tmp}
			appendArgs := kexecAppend
			if tt.initramfs == khoSimCPIO || tt.initramfs == khoSimStockCPIO {
				appendArgs += " kho_sim.hops=1 kho_sim.abi=7.2 kho_sim.real_kho=1"
			}
			if tt.initramfs == khoSimStockCPIO {
				appendArgs += " kho_sim.kernels=/kernels/stock"
			}
			if tt.name == "kho-sim-scratch-on-region" {
				appendArgs += " kho_sim.scratch=128M@0xc000000"
			}
			if tt.damage != "" {
				appendArgs += " kexecload.damage=" + tt.damage
			}
			lines := h.boot("kexecload-"+tt.name, stock, tt.initramfs, appendArgs)
			keepLog(t, filepath.Join(h.tmp, "kexecload-"+tt.name+".log"), filepath.Join(outDir, "kexecload-"+tt.name+".log"))
			texts := make([]string, len(lines))
			for i, l := range lines {
				texts[i] = l.Text
			}
			all := strings.Join(texts, "\n")
			for _, w := range tt.want {
				if !strings.Contains(all, w) {
					t.Errorf("the serial log lacks %q", w)
				}
			}
			for _, a := range tt.absent {
				if strings.Contains(all, a) {
					t.Errorf("the serial log has %q", a)
				}
			}
			if tt.initramfs == khoSimStockCPIO {
				return
			}
			if tt.initramfs == khoSimCPIO {
				if !t.Failed() {
					fmt.Fprintf(&report, "%-16s %s\n", tt.name, kexecTimings(lines))
				}
				return
			}
			m := writtenRE.FindStringSubmatch(all)
			if m == nil {
				t.Fatalf("the guest did not write the handover:\n%s", tailLines(lines, 30))
			}
			if tt.name == "handover" {
				if got := luoNumberRE.FindStringSubmatch(all); got == nil || got[1] != m[2] {
					t.Errorf("the 7.2 kernel reported liveupdate number %v, want %s, the one written", got, m[2])
				}
				// KASLR in a KHO kernel picks only scratch.
				if !inside(kernelRE.FindStringSubmatch(all), scratchRE.FindStringSubmatch(all)) {
					t.Errorf("the 7.2 kernel's code (%v) is not inside the scratch area (%v)", kernelRE.FindStringSubmatch(all), scratchRE.FindStringSubmatch(all))
				}
				// The root FDT page is preserved: after most of RAM was
				// handed out it still holds what stage 1 wrote.
				if got := intactRE.FindStringSubmatch(all); got == nil || got[1] != m[1] {
					t.Errorf("the preserved root FDT page %s was not found intact after memory pressure (%v)", m[1], got)
				}
			}
			if t.Failed() {
				t.Logf("console:\n%s", tailLines(lines, 60))
				return
			}
			fmt.Fprintf(&report, "%-16s %s\n", tt.name, kexecTimings(lines))
		})
	}
	t.Log("\n" + report.String())
	if err := os.WriteFile(filepath.Join(outDir, "kexecload.txt"), []byte(report.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// kexecTimings formats one boot's figures: the kexec_load syscall as the
// guest (or kho-sim) timed it, and from the guest's reboot line (else the
// next kernel's banner) to the 7.2 kernel's LUO (or KHO refusal) line on
// the host's clock, with the kernel's own timestamp of that line.
func kexecTimings(lines []consoleLine) string {
	var load string
	reboot, target, banners := -1, -1, 0
	for i, l := range lines {
		if m := kexecLoadRE.FindStringSubmatch(l.Text); m != nil {
			load = m[1]
		}
		if m := khoSimLoadRE.FindStringSubmatch(l.Text); m != nil {
			load = m[1]
		}
		if strings.Contains(l.Text, guestRebootAt) {
			reboot = i
		}
		// kho-sim quiets the console before its reboot: from the next
		// kernel's banner then.
		if strings.Contains(l.Text, bannerText) && reboot < 0 {
			banners++
			if banners == 2 {
				reboot = i
			}
		}
		if reboot >= 0 && target < 0 && (strings.Contains(l.Text, luoRetrieved) || strings.Contains(l.Text, khoDisabled)) {
			target = i
		}
	}
	if reboot < 0 {
		return "no timings"
	}
	if target < 0 {
		return fmt.Sprintf("kexec_load %s ms", load)
	}
	kernelTS := "?"
	if m := kernelTSRE.FindStringSubmatch(lines[target].Text); m != nil {
		if s, err := strconv.ParseFloat(m[1], 64); err == nil {
			kernelTS = fmt.Sprintf("%.3f", s)
		}
	}
	return fmt.Sprintf("kexec_load %s ms; reboot line to %q: %.2f s host (kernel timestamp %s s); QEMU start to it %.2f s",
		load, lineKey(lines[target].Text), (lines[target].At - lines[reboot].At).Seconds(), kernelTS, lines[target].At.Seconds())
}

func lineKey(s string) string {
	if strings.Contains(s, luoRetrieved) {
		return "luo: Retrieved"
	}
	return khoDisabled
}

// inside reports whether the range in inner's submatches lies in outer's.
func inside(inner, outer []string) bool {
	if inner == nil || outer == nil {
		return false
	}
	var v [4]uint64
	for i, s := range []string{inner[1], inner[2], outer[1], outer[2]} {
		n, err := strconv.ParseUint(s, 0, 64)
		if err != nil {
			return false
		}
		v[i] = n
	}
	return v[0] >= v[2] && v[1] <= v[3]
}

// keepLog copies a boot's serial log to out/.
func keepLog(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// stockKernel returns KHO_SIM_KERNEL or the newest Debian 6.1 kernel in
// scripts/fetch-kernel.sh's cache. It never downloads.
func (h *harness) stockKernel() string {
	if k := os.Getenv(envStockKernel); k != "" {
		if _, err := os.Stat(k); err != nil {
			h.t.Fatalf("%s: %v", envStockKernel, err)
		}
		return k
	}
	cache := os.Getenv(envKernelCache)
	if cache == "" {
		cache = filepath.Join(h.repo, ".cache", "kernels")
	}
	found, err := filepath.Glob(filepath.Join(cache, "linux-image-6.1.0-*-cloud-amd64", "boot", "vmlinuz-*"))
	if err != nil {
		h.t.Fatal(err)
	}
	if len(found) == 0 {
		h.missing("no Debian 6.1 kernel: set %s or run scripts/fetch-kernel.sh (cache %s)", envStockKernel, cache)
	}
	slices.Sort(found)
	return found[len(found)-1]
}

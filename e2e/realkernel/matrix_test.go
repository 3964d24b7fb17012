package realkernel

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// The corruption matrix's shape.
const (
	// matrixFlips is how many seeded bit flips (internal/corrupt's
	// "bitflip:SEED", seeds 1 to matrixFlips) are booted.
	matrixFlips = 50
	// matrixVMs is how many QEMU runs go side by side: one a core.
	matrixVMs = 2
	// matrixMemory is each guest's RAM: enough for Debian, kho-sim's
	// initramfs twice over and the 7.2 kernel's scratch.
	matrixMemory = "512M"
	// matrixWatchdog ends a case whose 7.2 kernel never reaches /init.
	// A case that does takes 12-25 s here.
	matrixWatchdog = 75 * time.Second
	// matrixAppend makes the stock boot run kho-sim once, writing its
	// 7.2 handover, damaging it and loading the real KHO kernel.
	// no_timer_check: under a loaded host Debian's IO-APIC timer check
	// fails now and then ("IO-APIC + timer doesn't work!") and panics.
	matrixAppend = kexecAppend + " kho_sim.hops=1 kho_sim.abi=7.2 kho_sim.real_kho=1 kho_sim.corrupt="
	// matrixConfig are the options the 7.2 kernel needs for the matrix:
	// without BUG every WARN_ON is silent.
	matrixConfig = "CONFIG_BUG=y"
	// matrixRAM is the 7.2 kernel's RAM in a matrixMemory guest, as
	// kho-sim sim --ram takes it: QEMU's usable e820 ranges, which the
	// kernel prints and every case checks (the ISA hole between them is
	// left out: kho-sim then says a read there is beyond RAM, which no
	// case has met).
	matrixRAM = "0x9fc00@0x0,0x1fee0000@0x100000"
)

// e820RE is a usable range the 7.2 kernel's console lists.
// 7.x prints "System RAM" where 6.1 printed "usable".
var e820RE = regexp.MustCompile(`BIOS-e820: \[mem (0x[0-9a-f]+)-(0x[0-9a-f]+)\] +(?:usable|System RAM)$`)

// outcome is what a kernel does with a handover at boot: the one
// vocabulary of kho-sim's prediction and of the real kernel's console.
type outcome string

const (
	// accepts: KHO took the handover and LUO printed its number.
	accepts outcome = "accepts"
	// noLUO: KHO took the handover, LUO printed no number and no panic.
	noLUO outcome = "no LUO state"
	// noHandover: kho_populate refused it ("disabling KHO revival").
	noHandover outcome = "boots without it"
	// warns: a WARNING before /init (the handover otherwise as the
	// detail says).
	warns outcome = "WARNs"
	// panics: "Kernel panic" before /init.
	panics outcome = "panics"
	// hangs: the watchdog ended the run before /init.
	hangs outcome = "hangs"
	// undetermined: kho-sim's prediction only, never observed: the kernel
	// reads memory the handover does not hold, whose content decides.
	undetermined outcome = "decided outside"
	// resets: the machine reset after the kexec without a line of the
	// 7.2 kernel (a fault before its console: the kernel has no
	// EARLY_PRINTK, and a triple fault under -no-reboot ends QEMU).
	resets outcome = "resets silently"
)

// verdict is an outcome with what says so: a liveupdate number, a kernel
// line, kho-sim's finding.
type verdict struct {
	class  outcome
	number string // the liveupdate number, for accepts (and warns)
	detail string
}

func (v verdict) String() string {
	if v.number != "" {
		return fmt.Sprintf("%s (number %s)", v.class, v.number)
	}
	return string(v.class)
}

// agrees compares class and, where both have one, the number.
func (v verdict) agrees(w verdict) bool {
	return v.class == w.class && (v.number == "" || w.number == "" || v.number == w.number)
}

// The 7.2 kernel's lines the classification reads.
const (
	khoBanner   = "Linux version 7."
	runInit     = "Run /init as init process"
	panicText   = "Kernel panic - not syncing: "
	warningText = "WARNING: "
)

var (
	warnAtRE = regexp.MustCompile(`WARNING: .* at ([^ ]+)`)
	// luoErrRE is a luo or KHO error line worth quoting.
	luoErrRE   = regexp.MustCompile(`\] ((?:luo|KHO): .*(?:fail|invalid|incompatible|too small|broken|not supported|error).*)$`)
	oopsRE     = regexp.MustCompile(`\] (BUG: .*|general protection fault.*|Oops: .*)`)
	predictNum = regexp.MustCompile(`liveupdate-number ([0-9]+), want`)
)

// classify reads the serial log of one matrix case: the part of the 7.2
// kernel up to its /init, or to the end when it never got there.
func classify(lines []string, timedOut bool) (verdict, error) {
	start := -1
	for i, l := range lines {
		if strings.Contains(l, khoBanner) {
			start = i
			break
		}
	}
	if start < 0 {
		if timedOut {
			return verdict{class: hangs, detail: "the stock kernel never kexeced"}, fmt.Errorf("no 7.x banner before the watchdog")
		}
		if !kexeced(lines) {
			return verdict{}, fmt.Errorf("the stock kernel did not kexec into the 7.2 kernel")
		}
		return verdict{class: resets, detail: "no line of the 7.2 kernel after the kexec"}, nil
	}
	sec := lines[start:]
	reachedInit := false
	for i, l := range sec {
		if strings.Contains(l, runInit) {
			sec, reachedInit = sec[:i], true
			break
		}
	}
	var v verdict
	var warnings, errs []string
	oops := ""
	for _, l := range sec {
		if m := luoNumberRE.FindStringSubmatch(l); m != nil {
			v.number = m[1]
		}
		if m := warnAtRE.FindStringSubmatch(l); m != nil {
			warnings = append(warnings, "WARN at "+m[1])
		}
		if m := oopsRE.FindStringSubmatch(l); m != nil && oops == "" {
			oops = m[1]
		}
		if m := luoErrRE.FindStringSubmatch(l); m != nil {
			errs = append(errs, strings.TrimSpace(m[1]))
		}
		if i := strings.Index(l, panicText); i >= 0 && v.class == "" {
			v.class, v.detail = panics, strings.TrimSpace(l[i+len(panicText):])
		}
	}
	joined := strings.Join(sec, "\n")
	switch {
	case v.class == panics:
		if oops != "" {
			v.detail = oops + "; " + v.detail
		}
	case !reachedInit && timedOut:
		v.class, v.detail = hangs, "last line: "+strings.TrimSpace(sec[len(sec)-1])
	case !reachedInit:
		v.class, v.detail = hangs, "QEMU ended before /init: "+strings.TrimSpace(sec[len(sec)-1])
	case len(warnings) > 0:
		v.class, v.detail = warns, strings.Join(warnings, ", ")
	case strings.Contains(joined, khoDisabled):
		v.class = noHandover
	case strings.Contains(joined, khoFound) && v.number != "":
		v.class = accepts
	default:
		v.class = noLUO
	}
	if len(errs) > 0 {
		v.detail = strings.TrimPrefix(strings.Join(append([]string{v.detail}, errs...), "; "), "; ")
	}
	if v.class == panics || v.class == noHandover {
		v.number = ""
	}
	return v, nil
}

// kexeced reports whether kho-sim loaded the 7.2 kernel and its boot
// finished: its KTAP's last line for boot 1.
func kexeced(lines []string) bool {
	loaded := false
	for _, l := range lines {
		loaded = loaded || strings.Contains(l, "kho-sim: real KHO kernel loaded")
		if loaded && strings.HasPrefix(l, "ok 1 boot-1") {
			return true
		}
	}
	return false
}

// prediction is kho-sim's own: its next boot reading the damaged image
// (kho-sim sim --abi 7.2 --hops 1 --corrupt KIND) and the first finding's
// words on what the 7.2 kernel does.
type prediction struct {
	applies bool
	damaged string // boot 1's "damaged:" line
	verdict
}

// predict reads kho-sim sim's KTAP.
func predict(ktap string) prediction {
	var p prediction
	if strings.Contains(ktap, "does not apply to this image") {
		return p
	}
	p.applies = true
	lines := strings.Split(ktap, "\n")
	boot2 := len(lines)
	for i, l := range lines {
		if s, ok := strings.CutPrefix(strings.TrimSpace(l), "# damaged: "); ok && p.damaged == "" {
			p.damaged = s
		}
		if strings.Contains(l, "# Subtest: boot-2") {
			boot2 = i
		}
	}
	finding := ""
	for i := boot2; i < len(lines); i++ {
		if strings.HasPrefix(lines[i], "    not ok ") && i+1 < len(lines) {
			finding, _ = strings.CutPrefix(strings.TrimSpace(lines[i+1]), "# ")
			break
		}
	}
	p.detail = finding
	switch {
	case finding == "":
		p.class, p.detail = accepts, "no finding"
	case strings.Contains(finding, "the handover does not hold"):
		p.class = undetermined
	case strings.Contains(finding, "disables KHO revival"):
		p.class = noHandover
	case strings.Contains(finding, "panics"):
		p.class = panics
	case strings.Contains(finding, "before its console"):
		p.class = resets
	case strings.Contains(finding, "hangs"):
		p.class = hangs
	case strings.Contains(finding, "WARN"):
		p.class = warns
	case strings.Contains(finding, "no LUO state"):
		p.class = noLUO
	default:
		// Anything else the 7.2 kernel takes at boot and misuses later,
		// if at all (a session block at the first open of /dev/liveupdate,
		// an FLB at its retrieve).
		p.class = accepts
	}
	if m := predictNum.FindStringSubmatch(finding); m != nil {
		p.number = m[1]
	} else if p.class == accepts || p.class == warns {
		p.number = "1" // what a cold boot's handover carries
	}
	return p
}

// matrixCase is one damaged handover booted.
type matrixCase struct {
	kind     string
	pred     prediction
	observed verdict
	damaged  string // the guest's "damaged:" line
	err      error
	took     time.Duration
	booted   bool // -run chose it
}

// logName is the case's serial log under out/.
func (c *matrixCase) logName() string {
	return "matrix-" + strings.NewReplacer(":", "-", "/", "-").Replace(c.kind)
}

// TestCorruptionMatrix boots the real 7.2 kernel on every corruption of
// internal/corrupt that applies to a 7.2 image and on matrixFlips seeded bit
// flips: each case is a fresh stock Debian boot running kho-sim run
// --real-kho with kho_sim.corrupt=KIND, which writes its default-scenario
// handover, damages it and kexec_load()s the 7.2 kernel. The kernel's
// console up to /init is classified (accepts, boots without it, WARNs,
// panics, hangs) and set beside kho-sim's own prediction for the same
// damage; every named kind must agree (a seeded flip that does not is
// logged: the sample looks for what no kind names). The table goes to out/corruption-matrix.txt,
// each console to out/matrix-CASE.log. The 7.2 kernel must be built with
// CONFIG_BUG (scripts/luo-kernel/build.sh does): without it WARN_ON is
// silent.
func TestCorruptionMatrix(t *testing.T) {
	h := optIn(t, "boot the real Linux 7.2 kernel on every damaged handover")
	repo := h.repo
	stock := h.stockKernel()
	k72 := h.buildKernel("7.2")
	next := k72.bzImage
	if cfg, err := os.ReadFile(filepath.Join(filepath.Dir(next), "config")); err != nil || !bytes.Contains(cfg, []byte("\n"+matrixConfig+"\n")) {
		h.missing("%s was not built with %s (%v): its WARN_ONs would be silent; build it with scripts/luo-kernel/build.sh of a tree that enables BUG", next, matrixConfig, err)
	}
	khoSim := h.goBuild("./cmd/kho-sim", "kho-sim")
	cpio := filepath.Join(h.tmp, "kho-sim.cpio")
	h.run("initramfs/build.sh", "bash", filepath.Join(repo, "initramfs/build.sh"), cpio, next)
	outDir := filepath.Join(repo, "out")
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatal(err)
	}

	var kinds []string
	for _, line := range strings.Split(strings.TrimSpace(h.run("kho-sim sim --corrupt list", khoSim, "sim", "--corrupt", "list")), "\n") {
		if k := strings.Fields(line)[0]; !strings.HasSuffix(k, "SEED") {
			kinds = append(kinds, k)
		}
	}
	for seed := 1; seed <= matrixFlips; seed++ {
		kinds = append(kinds, fmt.Sprintf("bitflip:%d", seed))
	}
	var cases []*matrixCase
	for _, k := range kinds {
		p := h.predict(khoSim, k)
		if p.applies {
			cases = append(cases, &matrixCase{kind: k, pred: p})
		} else if strings.HasPrefix(k, "bitflip:") {
			t.Errorf("%s does not apply to kho-sim's 7.2 handover", k)
		}
	}

	start := time.Now()
	sem := make(chan struct{}, matrixVMs)
	t.Run("boot", func(t *testing.T) {
		for _, c := range cases {
			t.Run(c.logName(), func(t *testing.T) {
				t.Parallel()
				sem <- struct{}{}
				defer func() { <-sem }()
				h := &harness{t: t, required: h.required, repo: repo, tmp: h.tmp, logDir: h.tmp}
				c.booted = true
				h.bootCase(c, stock, cpio, outDir)
				if c.err != nil {
					t.Error(c.err)
				}
			})
		}
	})
	wall := time.Since(start)
	// -run may pick cases (the README's reproducers): judge those only.
	cases = slices.DeleteFunc(cases, func(c *matrixCase) bool { return !c.booted })

	table, agreed, definite := matrixTable(cases, k72.version, wall)
	t.Log("\n" + table)
	if err := os.WriteFile(filepath.Join(outDir, "corruption-matrix.txt"), []byte(table), 0o644); err != nil {
		t.Fatal(err)
	}
	// A named kind is one of kho-sim's documented predictions: it must
	// hold. The seeded flips sample damage no kind names; where kho-sim's
	// prediction misses them the table says so, for README-matrix.md.
	for _, c := range cases {
		if c.err == nil && c.pred.class == undetermined {
			if !strings.HasPrefix(c.kind, "bitflip:") {
				t.Errorf("%s: a named kind needs a definite prediction; kho-sim says memory the handover does not hold decides (%s)", c.kind, c.pred.detail)
			}
			if c.observed.class == noHandover {
				t.Errorf("%s: the 7.2 kernel refused the root FDT, which only kho-sim's own bytes decide; kho-sim says memory the handover does not hold decides (%s)", c.kind, c.pred.detail)
			}
		} else if c.err == nil && !c.pred.agrees(c.observed) {
			if strings.HasPrefix(c.kind, "bitflip:") {
				t.Logf("%s: kho-sim predicts %s, the 7.2 kernel %s", c.kind, c.pred, c.observed)
			} else {
				t.Errorf("%s: kho-sim predicts %s (%s), the 7.2 kernel %s (%s)", c.kind, c.pred, c.pred.detail, c.observed, c.observed.detail)
			}
		}
		if c.err == nil && c.pred.damaged != c.damaged {
			t.Errorf("%s: kho-sim's prediction damaged %q, the guest %q", c.kind, c.pred.damaged, c.damaged)
		}
	}
	t.Logf("kho-sim's prediction agrees with the real 7.2 kernel in %d of %d cases with a definite prediction, of %d (out/corruption-matrix.txt)", agreed, definite, len(cases))
}

// predict runs kho-sim's own next boot on the damage.
func (h *harness) predict(khoSim, kind string) prediction {
	img := filepath.Join(h.tmp, "predict-"+strings.ReplaceAll(kind, ":", "-")+".img")
	defer os.Remove(img)
	cmd := exec.Command(khoSim, "sim", "--image", img, "--abi", "7.2", "--hops", "1", "--ram", matrixRAM, "--corrupt", kind)
	out, err := cmd.Output()
	// kho-sim sim exits 1 when a boot failed, as the damage makes it.
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		h.t.Fatalf("kho-sim sim --corrupt %s: %v", kind, err)
	}
	return predict(string(out))
}

// bootCase boots one case and classifies its console.
func (h *harness) bootCase(c *matrixCase, stock, cpio, outDir string) {
	inits := 0
	t0 := time.Now()
	lines, err := h.bootWith(c.logName(), stock, cpio, matrixAppend+c.kind, bootOptions{
		memory:  matrixMemory,
		timeout: matrixWatchdog,
		// The 7.2 kernel has read the whole handover it reads at boot
		// once it starts /init (the stock kernel's is the first).
		stop: func(line string) bool {
			if strings.Contains(line, runInit) {
				inits++
			}
			return inits == 2
		},
	})
	c.took = time.Since(t0)
	keepLog(h.t, filepath.Join(h.tmp, c.logName()+".log"), filepath.Join(outDir, c.logName()+".log"))
	if err != nil && !errors.Is(err, errWatchdog) {
		c.err = err
		return
	}
	texts := make([]string, len(lines))
	for i, l := range lines {
		texts[i] = l.Text
		if s, ok := strings.CutPrefix(strings.TrimSpace(l.Text), "# damaged: "); ok && c.damaged == "" {
			c.damaged = s
		}
	}
	if c.damaged == "" {
		c.err = fmt.Errorf("kho-sim did not damage the handover:\n%s", tailLines(lines, 30))
		return
	}
	if ram := usableRAM(texts); ram != "" && ram != matrixRAM {
		c.err = fmt.Errorf("the 7.2 kernel's usable RAM is %s, kho-sim predicted with --ram %s (matrixRAM)", ram, matrixRAM)
		return
	}
	c.observed, c.err = classify(texts, errors.Is(err, errWatchdog))
}

// usableRAM is the 7.x kernel's usable e820 ranges in --ram form, "" when
// it printed no banner (it reset before its console), "none" when it
// printed the banner but no range (setup_arch prints them right after).
func usableRAM(lines []string) string {
	start := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, khoBanner) })
	if start < 0 {
		return ""
	}
	var ranges []string
	for _, l := range lines[start:] {
		if m := e820RE.FindStringSubmatch(l); m != nil {
			var start, end uint64
			fmt.Sscanf(m[1], "0x%x", &start)
			fmt.Sscanf(m[2], "0x%x", &end)
			ranges = append(ranges, fmt.Sprintf("%#x@%#x", end+1-start, start))
		}
	}
	if len(ranges) == 0 {
		return "none"
	}
	return strings.Join(ranges, ",")
}

// agrees reports whether the real kernel bore the prediction out. An
// undetermined one is not judged; it only must not be a refusal of the
// root FDT, which reads nothing outside the handover.
func (c *matrixCase) agrees() bool {
	return c.err == nil && c.pred.class != undetermined && c.pred.agrees(c.observed)
}

// matrixTable formats the cases and counts the agreements among the
// cases with a definite prediction.
func matrixTable(cases []*matrixCase, kernel string, wall time.Duration) (table string, agreed, definite int) {
	var b, details strings.Builder
	var outside []string
	fmt.Fprintf(&b, "Corruption matrix: kho-sim's 7.2 handover (default scenario) damaged, then read by the real Linux %s\n", kernel)
	fmt.Fprintf(&b, "(CONFIG_BUG, KEXEC_HANDOVER_DEBUG) booted by kexec_load from Debian 6.1; QEMU TCG, %s, %d VMs side by side.\n", matrixMemory, matrixVMs)
	fmt.Fprintf(&b, "Observed: the 7.2 kernel's console up to /init. Predicted: kho-sim's next boot on the same damage (--ram %s).\n", matrixRAM)
	fmt.Fprintf(&b, "\"decided outside\": the kernel reads memory the handover does not hold, whose content decides; not counted.\n\n")
	fmt.Fprintf(&b, "%-17s %-40s %-26s %-26s %s\n", "case", "damage", "predicted", "observed", "agree")
	for _, c := range cases {
		agree := yesNo(c.agrees())
		if c.pred.class == undetermined {
			agree = "-"
			if c.err == nil {
				outside = append(outside, fmt.Sprintf("%s %s", c.kind, c.observed.class))
			}
		} else {
			definite++
			if c.agrees() {
				agreed++
			}
		}
		obs := c.observed.String()
		if c.err != nil {
			obs = "error"
		}
		fmt.Fprintf(&b, "%-17s %-40s %-26s %-26s %s\n", c.kind, shortDamage(c.damaged, c.pred.damaged), c.pred.String(), obs, agree)
		fmt.Fprintf(&details, "%s (%.1f s): %s\n  predicted: %s\n  observed:  %s\n", c.kind, c.took.Seconds(), c.damaged, c.pred.detail, c.observed.detail)
		if c.pred.damaged != c.damaged {
			fmt.Fprintf(&details, "  kho-sim's prediction damaged other bytes: %s\n", c.pred.damaged)
		}
		if c.err != nil {
			fmt.Fprintf(&details, "  error: %v\n", c.err)
		}
	}
	fmt.Fprintf(&b, "\nagreement: %d of %d with a definite prediction; %d decided outside the handover", agreed, definite, len(cases)-definite)
	if len(outside) > 0 {
		fmt.Fprintf(&b, " (observed: %s)", strings.Join(outside, ", "))
	}
	fmt.Fprintf(&b, "; wall time of the boots %.0f s\n\nDetails:\n%s", wall.Seconds(), details.String())
	return b.String(), agreed, definite
}

var flipRE = regexp.MustCompile(`^bitflip:[0-9]+: ([a-z-]+) (0x[0-9a-f]+) byte (0x[0-9a-f]+) bit ([0-7])`)

// shortDamage names a flip by role, page, offset and bit; a kind by its
// first edit's field.
func shortDamage(guest, host string) string {
	d := guest
	if d == "" {
		d = host
	}
	if m := flipRE.FindStringSubmatch(d); m != nil {
		return fmt.Sprintf("%s %s+%s bit %s", m[1], m[2], m[3], m[4])
	}
	if _, rest, ok := strings.Cut(d, ": "); ok {
		d = rest
	}
	if i := strings.Index(d, " at 0x"); i >= 0 {
		d = d[:i]
	}
	if len(d) > 44 {
		d = d[:41] + "..."
	}
	return d
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

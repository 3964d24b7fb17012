package main

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/guest/internal/pid1"
	kcmdline "github.com/kho-sim/kho-sim/internal/cmdline"
	"github.com/kho-sim/kho-sim/pkg/kexec"
)

// Hops between kernels. The kernel's own tests boot one image for both
// stages; with hops the initramfs carries several kernels, each with the
// luo_kexec_simple built from its own tree, and the command line says
// which one is running and where to go next:
//
//	luo_kernel=7.2 luo_next=7.3,7.2
//
// A boot runs /luo_kexec_simple-<luo_kernel>. After stage 2 passed, a boot
// with kernels left in luo_next runs stage 1 again and kexecs
// /kernel-<first of luo_next> with luo_kernel set to it, luo_next to the
// rest and luo_stage=2, so every hop has stage 1 on one kernel and stage 2
// on the next.
const (
	kernelArg      = "luo_kernel"
	nextArg        = "luo_next"
	hopKernel      = "kernel-"
	hopSelftest    = selftestPath + "-"
	maxHopKernels  = 16
	maxHopNameSize = 32
)

var hopNameRE = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// hopPlan is what the command line says about hops; the zero value means
// one kernel, kexec'd into itself.
type hopPlan struct {
	kernel string
	next   []string
}

func validHopName(name string) error {
	if len(name) > maxHopNameSize || !hopNameRE.MatchString(name) {
		return fmt.Errorf("kernel name %q: want 1 to %d of [A-Za-z0-9._-]", name, maxHopNameSize)
	}
	return nil
}

// parseHopPlan reads luo_kernel= and luo_next= from a command line.
// luo_next without luo_kernel is an error: the boot would not know whose
// selftest to run.
func parseHopPlan(line kcmdline.Line) (hopPlan, error) {
	var p hopPlan
	p.kernel, _ = line.Lookup(kernelArg)
	next, haveNext := line.Lookup(nextArg)
	if p.kernel == "" {
		if haveNext {
			return hopPlan{}, fmt.Errorf("%s= without %s=", nextArg, kernelArg)
		}
		return hopPlan{}, nil
	}
	if err := validHopName(p.kernel); err != nil {
		return hopPlan{}, fmt.Errorf("%s=: %w", kernelArg, err)
	}
	if next != "" {
		p.next = strings.Split(next, ",")
	}
	if len(p.next) > maxHopKernels {
		return hopPlan{}, fmt.Errorf("%s=: %d kernels, at most %d", nextArg, len(p.next), maxHopKernels)
	}
	for _, n := range p.next {
		if err := validHopName(n); err != nil {
			return hopPlan{}, fmt.Errorf("%s=: %w", nextArg, err)
		}
	}
	return p, nil
}

func (p hopPlan) active() bool { return p.kernel != "" }

// nextCmdline is the command line of the next hop: cmdline with
// luo_kernel= set to the next kernel, luo_next= to the rest (or dropped)
// and luo_stage=2.
func (p hopPlan) nextCmdline(cmdline string) (string, error) {
	set := map[string]string{kernelArg: p.next[0], stageParam: "2"}
	var drop []string
	if len(p.next) > 1 {
		set[nextArg] = strings.Join(p.next[1:], ",")
	} else {
		drop = []string{nextArg}
	}
	return kexec.RewriteCmdline(cmdline, set, drop)
}

// hopSpec is one -hop NAME=BZIMAGE,SELFTEST of pack.
type hopSpec struct{ name, kernel, selftest string }

func parseHopSpec(s string) (hopSpec, error) {
	name, paths, ok := strings.Cut(s, "=")
	kernel, selftest, ok2 := strings.Cut(paths, ",")
	if !ok || !ok2 || kernel == "" || selftest == "" {
		return hopSpec{}, fmt.Errorf("-hop %q: want NAME=BZIMAGE,SELFTEST", s)
	}
	if err := validHopName(name); err != nil {
		return hopSpec{}, fmt.Errorf("-hop: %w", err)
	}
	return hopSpec{name, kernel, selftest}, nil
}

// hopSources are the initramfs files of hops: /kernel-NAME and
// /luo_kexec_simple-NAME for each.
func hopSources(hops []hopSpec) ([]pid1.Source, error) {
	var sources []pid1.Source
	seen := map[string]bool{}
	for _, h := range hops {
		if seen[h.name] {
			return nil, fmt.Errorf("-hop %s given twice", h.name)
		}
		seen[h.name] = true
		sources = append(sources, pid1.Source{Name: hopKernel + h.name, Path: h.kernel, Mode: 0o755}, pid1.Source{Name: hopSelftest + h.name, Path: h.selftest, Mode: 0o755})
	}
	return sources, nil
}

// selftestBinary is the luo_kexec_simple this boot runs: the running
// kernel's own when hopping.
func (g guest) selftestBinary() string {
	if g.hop.active() {
		return "/" + hopSelftest + g.hop.kernel
	}
	return "/" + selftestPath
}

// logHop names the running kernel and the hops left.
func (g guest) logHop() {
	if !g.hop.active() {
		return
	}
	var u unix.Utsname
	release := "?"
	if err := unix.Uname(&u); err == nil {
		release = unix.ByteSliceToString(u.Release[:])
	}
	g.Logf("kernel %s (release %s), next %q", g.hop.kernel, release, g.hop.next)
}

// hopOn runs stage 1 again on this kernel after its stage 2 passed and
// kexecs into the next one.
func (g guest) hopOn() error {
	g.Stage = 1
	g.Logf("hop: stage 1 on %s, then kexec into %s", g.hop.kernel, g.hop.next[0])
	if err := g.selftest(); err != nil {
		return err
	}
	return g.kexecHop()
}

// kexecHop loads the next kernel of the plan with this root file system
// (every regular file of /) and the next hop's command line, and reboots
// into it.
func (g guest) kexecHop() error {
	if len(g.hop.next) == 0 {
		return errors.New("hop: no next kernel on the command line")
	}
	entries, err := os.ReadDir("/")
	if err != nil {
		return fmt.Errorf("hop: %w", err)
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	files, err := pid1.ReadFiles(func(string) uint64 { return 0o755 }, names...)
	if err != nil {
		return err
	}
	initrd, err := pid1.MemfdInitramfs(files...)
	if err != nil {
		return err
	}
	path := "/" + hopKernel + g.hop.next[0]
	cmdline, err := g.hop.nextCmdline(g.Cmdline)
	if err != nil {
		return err
	}
	if err := kexec.FileLoad(kexec.LoadOptions{Kernel: path, Initrd: initrd, Cmdline: cmdline}); err != nil {
		return err
	}
	g.Logf("hop: kexec into %s", g.hop.next[0])
	g.Mark("reboot-kexec")
	return pid1.RebootKexec()
}

package sim

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/internal/check"
	"github.com/kho-sim/kho-sim/internal/scenario"
	"github.com/kho-sim/kho-sim/internal/timing"
	"github.com/kho-sim/kho-sim/pkg/flb"
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/ktap"
	"github.com/kho-sim/kho-sim/pkg/luo"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// boot is one simulated kernel, from the handover it receives to the one
// it writes. Everything is created afresh for each boot: nothing survives
// but the region.
type boot struct {
	cfg   Config
	sc    *scenario.Scenario
	n     int // this boot's number, 1-based
	boots int

	// its report
	top, t    *ktap.Writer
	name      string // the subtest's name and the boot's top-level description
	totals    [3]int // passed, failed, skipped top-level results before this boot
	phases    timing.Phases
	stepTimes []timing.Phase // the steps phase by operation

	// the kernel: its memory, KHO, LUO, and the checker watching the FLBs
	alloc *physmem.Allocator
	in    *kho.Incoming
	out   *kho.Outgoing
	core  *luo.Core
	chk   *check.Checker

	// what the previous boot handed over
	inMeta   *Meta
	inABI    kernel.Generation // the generation the incoming handover is read as
	inBlocks []kho.Block

	// the simulated subsystems, the process using them, and its steps
	sys   *subsys
	flbs  flbSet
	user  *userspace
	steps *steps
}

// Run runs one boot and prints its KTAP. It never fails: every problem,
// including a handover that cannot be read, is a KTAP failure.
func Run(cfg Config) *Outcome {
	b := &boot{cfg: cfg, sc: cfg.Scenario, n: max(cfg.In.Boot, 1), boots: cfg.Boots, top: ktap.NewWriter(cfg.Out)}
	for _, p := range cfg.Phases {
		b.phases.Add(p.Name, p.D)
	}
	return b.finish(b.run())
}

// run is the boot: read what the previous kernel handed over, bring up KHO
// and LUO, let the subsystems register, run the scenario's steps, and end
// as the scenario says (a kexec, a kexec that fails, a cold reboot).
func (b *boot) run() *Outcome {
	b.begin()
	if b.cfg.In.RootPA != 0 && !b.incoming() {
		return &Outcome{Last: true}
	}
	if !b.kernelInit() {
		return &Outcome{Last: true}
	}
	b.moduleInit()
	if b.in != nil {
		// Retrieve and finish are checked against what was handed over.
		b.chk.Incoming(b.inEntries())
	}
	plan := b.sc.Boot(b.n-1, b.boots)
	keep := plan.End == "" && b.cfg.KeepHandover
	if keep {
		plan.End = scenario.EndKexec
	}
	b.runSteps(plan.Steps)
	b.settle()
	o := b.reboot(plan.End)
	o.Last = o.Last || keep // the boot it hands over to never runs
	return o
}

// begin starts the boot's memory allocator and checker, and opens its KTAP
// subtest (and the run's KTAP on the first boot).
func (b *boot) begin() {
	cold := b.cfg.In.RootPA == 0
	if b.n == 1 && cold {
		b.top.Header(b.boots)
	}
	b.alloc = physmem.NewAllocator(b.cfg.Region)
	b.chk = check.New(b.n)
	kind := "cold boot"
	if !cold {
		kind = fmt.Sprintf("hop %d", b.n-1)
	}
	b.name = fmt.Sprintf("boot-%d %s, scenario %s", b.n, kind, b.sc.Name)
	b.t = b.top.Subtest(b.name)
}

// incoming reads and checks the previous boot's handover. It returns false
// when the handover cannot be used at all.
func (b *boot) incoming() bool {
	t0 := time.Now()
	defer func() { b.phases.Add("handover read", time.Since(t0)) }()
	var mem kho.Memory = b.cfg.Region
	if b.cfg.RAM != nil {
		mem = kho.WithNextRAM(mem, b.cfg.RAM)
	}
	in, err := kho.ReadIncoming(mem, b.cfg.In.RootPA)
	err = luo.ExplainRootDamage(err, b.readABI())
	if !b.result(err == nil, "KHO root FDT and preserved-memory map are valid", err) {
		return false
	}
	b.in = in
	b.inBlocks = in.Blocks()
	for _, blk := range b.inBlocks {
		if err := b.alloc.Reserve(physmem.Range{Start: blk.PA, Size: blk.Size()}); err != nil {
			b.result(false, "preserved pages reserved", err)
			return false
		}
	}
	gen := b.checkGeneration()
	meta, err := b.readMeta()
	if !b.result(err == nil, "kho-sim metadata is valid", err) {
		return false
	}
	b.inMeta = meta
	if hz := meta.TSCHz; hz != 0 && b.cfg.TSCHz != 0 {
		if d, ok := timing.TSCDuration(meta.TSCReboot, timing.TSC(), hz, b.cfg.TSCHz); ok {
			b.phases.Add("blackout", d)
		} else {
			b.t.Diag("blackout not measured: the TSC ran at %d Hz before the kexec and %d Hz after, or went backwards", hz, b.cfg.TSCHz)
		}
	}
	b.totals = [3]int{meta.Passed, meta.Failed, meta.Skipped}
	luoDesc := b.luoDesc()
	err = b.checkLUO()
	if b.lostByFlaw(err) {
		// The lost FLB is the flaw this scenario shows; the rest of the
		// handover is still checked by the boot.
		b.t.Result(true, luoDesc, ktap.Directive{Kind: ktap.DirXFail, Reason: "known 7.0 flaw: " + b.sc.Flaw})
		b.t.Diag("%s", err.Error())
		return gen
	}
	return b.result(err == nil, luoDesc, err) && gen
}

// kernelInit brings up this boot's KHO (kho_init) and LUO: the model takes
// the incoming LUO state, as luo_early_startup does, and sets up the
// outgoing one.
func (b *boot) kernelInit() bool {
	out, err := b.newOutgoing()
	if !b.result(err == nil, "KHO set up", err) {
		return false
	}
	b.out = out
	b.core = luo.New(memory{b}, luo.Options{FLB: flb.Options{FixFinishBeforeRetrieve: b.cfg.Fix}, Generation: b.abi(), ReadGeneration: b.readABI()})
	if b.in != nil {
		blob, err := b.incomingLUO()
		if err == nil {
			err = b.core.SetupIncoming(blob)
		}
		if !b.result(err == nil, "the model accepts the incoming "+luo.Noun(b.readABI()), err) {
			return false
		}
	}
	luoPA, err := b.core.SetupOutgoing()
	if err == nil {
		err = b.publishLUO(luoPA)
	}
	return b.result(err == nil, "outgoing "+luo.Noun(b.abi())+" set up", err)
}

// moduleInit builds the scenario's subsystems and the process that uses
// them, then registers every file handler and, unless the scenario
// registers them itself, its FLBs, as the subsystems' module init does.
func (b *boot) moduleInit() {
	b.sys = &subsys{boot: b.n, sc: b.sc, chk: b.chk, payloads: newPayloads(b.in, b.out), faults: &faults{}, handed: b.inMeta}
	b.flbs = newFLBs(b.sc.FLBs, b.sys)
	handlers := newHandlers(b.sc.Handlers, b.sys)
	b.user = &userspace{
		sc: b.sc, boot: b.n, core: b.core, chk: b.chk, handlers: handlers, handed: b.inMeta,
		sessions: map[string]*luo.Session{}, inSessions: map[string]*luo.Session{}, files: map[fileKey]*simFile{},
	}
	b.steps = &steps{
		ops: stepTable(), user: b.user, core: b.core, chk: b.chk,
		flbs: b.flbs, handlers: handlers, faults: b.sys.faults, log: stepLog{source: b.sc.Source},
	}
	for _, d := range b.sc.Handlers {
		b.steps.run(scenario.Step{Op: "register-handler", Arg: d.Name})
		if !d.AutoRegister() {
			continue
		}
		for _, name := range d.FLBs {
			b.steps.run(scenario.Step{Op: "register-flb", Args: map[string]string{"handler": d.Name, "flb": name}})
		}
	}
}

// runSteps runs the boot's scenario steps, timed by operation.
func (b *boot) runSteps(plan []scenario.Step) {
	t0 := time.Now()
	var byOp timing.Phases
	for _, st := range plan {
		ts := time.Now()
		b.steps.run(st)
		byOp.Accumulate(st.Op, time.Since(ts))
	}
	b.phases.Add("steps", time.Since(t0))
	b.stepTimes = byOp.List()
}

// settle ends the steps: the checker sees the boot's last callback, the
// previous boot's memory is released, and the steps and retrieved payloads
// get their results.
func (b *boot) settle() {
	b.chk.Done()
	b.releaseIncoming()
	stepErrs := b.steps.log.failures()
	b.result(len(stepErrs) == 0, "every step returned what the scenario expects", errors.New(strings.Join(stepErrs, "\n")))
	if b.in != nil {
		payloadErrs := b.sys.payloads.failures()
		b.result(len(payloadErrs) == 0, "every retrieved payload matches what was preserved", errors.New(strings.Join(payloadErrs, "\n")))
	}
}

// reboot ends the boot as the scenario's plan says.
func (b *boot) reboot(end string) *Outcome {
	switch end {
	case scenario.EndKexec:
		return b.kexec()
	case scenario.EndKexecFails:
		b.promises()
		b.abort("the scenario's kexec fails after preserve")
		return &Outcome{Last: true}
	case scenario.EndCold:
		return b.coldReboot()
	}
	// The run's last boot: nothing follows.
	b.promises()
	return &Outcome{Last: true}
}

// kexec writes the handover, damages it if asked, and loads the next
// kernel with it.
func (b *boot) kexec() *Outcome {
	root, stamp, err := b.writeHandover()
	b.promises()
	if !b.result(err == nil, "handover image written", err) {
		b.abort("the image could not be written")
		return &Outcome{Last: true}
	}
	next := Handover{RootPA: root, Boot: b.n + 1}
	b.t.Diag("handover: kho_sim.fdt=%#x for boot %d", root, next.Boot)
	if b.abi() != kernel.V70 {
		b.t.Diag("handover generation %s, liveupdate number %d", luo.Expected(b.abi()), b.luoNumber())
	}
	if b.cfg.Damage != nil {
		what, err := b.cfg.Damage(b.cfg.Region, root)
		if !b.result(err == nil, "image damaged as asked", err) {
			return &Outcome{Last: true}
		}
		b.t.Diag("damaged: %s", what)
	}
	if !b.load(next) {
		b.abort("loading the next kernel failed")
		return &Outcome{Last: true}
	}
	if b.cfg.Load != nil && b.cfg.DryRun {
		b.abort("dry run: the kernel was loaded and unloaded again")
		return &Outcome{Last: true}
	}
	return &Outcome{Next: next, rebootTSC: stamp}
}

// writeHandover is the reboot's serialization: LUO serializes its state,
// kho-sim's metadata and KHO's root are written, and the FLB table is read
// back through them as the next kernel will find it. It returns the root's address and
// the metadata's tsc-reboot bytes.
func (b *boot) writeHandover() (root uint64, stamp []byte, err error) {
	t0 := time.Now()
	defer func() { b.phases.Add("serialize", time.Since(t0)) }()
	if err := b.core.Serialize(); err != nil {
		return 0, nil, err
	}
	if root, stamp, err = b.writeImage(); err != nil {
		return 0, nil, err
	}
	err = b.checkOutgoingTable(root)
	if b.lostByFlaw(err) {
		b.t.Diag("known 7.0 flaw %s: %v", b.sc.Flaw, err)
		err = nil
	}
	return root, stamp, err
}

// coldReboot hands nothing over; on a machine the next kernel is still
// kexec'd, only without kho_sim.fdt= on its command line.
func (b *boot) coldReboot() *Outcome {
	b.promises()
	next := Handover{Boot: b.n + 1}
	if !b.load(next) {
		return &Outcome{Last: true}
	}
	return &Outcome{Next: next}
}

// load loads the next kernel, in run mode, and reports whether it could.
func (b *boot) load(next Handover) bool {
	if b.cfg.Load == nil {
		return true
	}
	phases, err := b.cfg.Load(next)
	for _, p := range phases {
		b.phases.Add(p.Name, p.D)
	}
	return b.result(err == nil, "next kernel loaded", err)
}

// abort runs the kernel's path for a reboot that will not happen: every
// file is unpreserved, so each FLB's unpreserve runs once, and the region is
// left without a handover.
func (b *boot) abort(why string) {
	b.t.Diag("abort path: %s", why)
	err := b.user.abort()
	if err == nil {
		err = b.out.Abort()
	}
	live := 0
	for _, f := range b.flbs {
		if f.live {
			live++
		}
	}
	if err == nil && live > 0 {
		err = fmt.Errorf("%d FLBs still hold saved state after the abort path", live)
	}
	b.result(err == nil && len(b.chk.Violations()) == 0, "abort path unpreserved every file and FLB once", errors.Join(err, violations(b.chk)))
}

// finish prints the boot's WARN_ONs, its phase timings and its top-level
// result.
func (b *boot) finish(o *Outcome) *Outcome {
	if b.core != nil {
		b.t.Diag("kernel WARN_ONs: %d", b.core.WarnCount())
		for _, w := range b.core.Warnings() {
			if errors.As(w, new(flb.Warning)) {
				b.t.Diag("%v", w)
			}
		}
	}
	for _, p := range b.phases.List() {
		b.t.Diag("phase %s %s", p.Name, timing.Ms(p.D))
	}
	if len(b.stepTimes) > 0 {
		// The steps phase split by operation (preserve, retrieve,
		// finish, ...), each summed over the boot, in first-run order.
		parts := make([]string, len(b.stepTimes))
		for i, p := range b.stepTimes {
			parts[i] = fmt.Sprintf("%s %.3f ms", p.Name, float64(p.D)/float64(time.Millisecond))
		}
		b.t.Diag("steps by operation: %s", strings.Join(parts, ", "))
	}
	_, fail, _ := b.t.Counts()
	o.OK = fail == 0
	o.Events, o.Violations = b.chk.Events(), b.chk.Violations()
	b.top.SetNext(b.n)
	b.top.Result(o.OK, b.name, ktap.Directive{})
	if o.Last {
		// A run that stops early still accounts for every planned boot.
		for i := b.n + 1; i <= b.boots; i++ {
			b.top.Result(true, fmt.Sprintf("boot-%d", i), ktap.Skip(fmt.Sprintf("no boot: the run stopped at boot %d", b.n)))
		}
		passed, failed := b.totals[0], b.totals[1]
		if o.OK {
			passed++
		} else {
			failed++
		}
		b.top.Diag("Totals: pass:%d fail:%d xfail:0 xpass:0 skip:%d error:0", passed, failed, b.totals[2]+max(b.boots-b.n, 0))
		b.top.Diag("kho-sim: done")
	}
	return o
}

// The pieces of the boot above, in the order they run.

// readMeta decodes kho-sim's metadata and checks it was written by the
// previous boot of this scenario.
func (b *boot) readMeta() (*Meta, error) {
	t, _, err := b.in.SubtreeFDT(MetaName)
	if err != nil {
		return nil, err
	}
	m, err := DecodeMeta(t)
	if err != nil {
		return nil, err
	}
	if m.Boot+1 != b.n {
		return nil, fmt.Errorf("written by boot %d, but this is boot %d", m.Boot, b.n)
	}
	if m.Scenario != b.sc.Name {
		return nil, fmt.Errorf("written for scenario %q, this boot runs %q", m.Scenario, b.sc.Name)
	}
	b.boots = m.Boots
	return m, nil
}

// inEntries is the FLB table the previous boot says it handed over.
func (b *boot) inEntries() []check.Entry {
	var e []check.Entry
	for _, f := range b.inMeta.FLBs {
		e = append(e, check.Entry{Name: f.Name, Data: f.Data, Count: f.Count})
	}
	return e
}

// releaseIncoming returns the previous boot's pages to this boot's
// allocator, except payloads that were never finished: a kernel that never
// finishes an FLB never frees its memory either.
func (b *boot) releaseIncoming() {
	for _, blk := range b.inBlocks {
		if !b.sys.payloads.holds(blk) {
			_ = b.alloc.Free(blk.PA) // reserved above; cannot be missing
		}
	}
	b.inBlocks = nil
}

// luoNumber is the liveupdate number this boot hands over: one more than
// the previous boot's, 1 after a cold boot.
func (b *boot) luoNumber() uint64 {
	if b.inMeta != nil {
		return b.inMeta.LUONumber + 1
	}
	return 1
}

// writeImage writes kho-sim's metadata and finalizes KHO.
func (b *boot) writeImage() (uint64, []byte, error) {
	m := &Meta{
		Scenario: b.sc.Name, Boot: b.n, Boots: b.boots, Fix: b.cfg.Fix,
		Passed: b.totals[0], Failed: b.totals[1], Skipped: b.totals[2],
		TSCHz: b.cfg.TSCHz, TSCReboot: tscPlaceholder, LUONumber: b.luoNumber(),
		FLBs: b.flbs.preserved(), Files: b.user.preservedFiles(),
	}
	pass, fail, _ := b.t.Counts()
	if fail == 0 && pass > 0 {
		m.Passed++
	} else {
		m.Failed++
	}
	blob, err := m.Encode()
	if err != nil {
		return 0, nil, err
	}
	pa, mem, err := b.out.AllocPreserve(uint64(len(blob)))
	if err != nil {
		return 0, nil, err
	}
	copy(mem, blob)
	var ph [8]byte
	binary.LittleEndian.PutUint64(ph[:], tscPlaceholder)
	off := bytes.Index(mem, ph[:])
	if off < 0 || bytes.Count(mem, ph[:]) != 1 {
		return 0, nil, errors.New("tsc-reboot placeholder not found once in the metadata")
	}
	if err := b.out.AddSubtree(MetaName, pa); err != nil {
		return 0, nil, err
	}
	root, err := b.out.Finalize()
	return root, mem[off : off+8], err
}

// promises prints one result per promise.
func (b *boot) promises() {
	for _, p := range check.Promises {
		v := b.chk.ViolationsOf(p)
		var reasons []string
		for _, x := range v {
			reasons = append(reasons, x.String())
		}
		// kselftest's convention for an expected failure: "ok ... # XFAIL".
		ok, dir := len(v) == 0, ktap.Directive{}
		if !ok && b.knownFlaw(p) {
			ok, dir = true, ktap.Directive{Kind: ktap.DirXFail, Reason: "known 7.0 flaw: " + b.sc.Flaw}
		}
		b.t.Result(ok, string(p), dir)
		if len(v) > 0 {
			b.t.Diag("%s", strings.Join(reasons, "\n"))
		}
	}
}

func (b *boot) knownFlaw(p check.Promise) bool {
	switch b.sc.Flaw {
	case scenario.FlawFinishBeforeRetrieve:
		return !b.cfg.Fix && p == check.FinishedOnceAtLast
	case scenario.FlawLongCompatible:
		// No option fixes it: the name is cut when serialized, and the
		// state is lost, so finish never runs.
		return p == check.FinishedOnceAtLast || p == check.SerializedCount
	}
	return false
}

// lostByFlaw reports whether err is the FLB loss the long-compatible
// scenario exists to show.
func (b *boot) lostByFlaw(err error) bool {
	var f kernel.Finding
	return b.sc.Flaw == scenario.FlawLongCompatible && errors.As(err, &f) && f.Action == kernel.LosesFLBState
}

// result prints one subtest result; err explains a failure.
func (b *boot) result(ok bool, desc string, err error) bool {
	b.t.Result(ok, desc, ktap.Directive{})
	if !ok && err != nil && err.Error() != "" {
		b.t.Diag("%s", err.Error())
	}
	return ok
}

func violations(c *check.Checker) error {
	var errs []error
	for _, v := range c.Violations() {
		errs = append(errs, errors.New(v.String()))
	}
	return errors.Join(errs...)
}

// memory adapts KHO to the LUO model: outgoing allocations come from this
// boot's KHO, incoming memory is mapped only where the previous boot
// preserved it.
type memory struct{ b *boot }

func (m memory) AllocPreserve(size uint64) (uint64, []byte, error) {
	return m.b.out.AllocPreserve(size)
}
func (m memory) UnpreserveFree(pa uint64) error { return m.b.out.UnpreserveFree(pa) }
func (m memory) Map(pa, size uint64) ([]byte, error) {
	if m.b.in == nil {
		return nil, fmt.Errorf("no incoming handover: %w", unix.ENODATA)
	}
	return m.b.in.Map(pa, size)
}

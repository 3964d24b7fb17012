package sim

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/pkg/check"
	"github.com/kho-sim/kho-sim/pkg/flb"
	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/ktap"
	"github.com/kho-sim/kho-sim/pkg/luo"
	"github.com/kho-sim/kho-sim/pkg/physmem"
	"github.com/kho-sim/kho-sim/pkg/scenario"
	"github.com/kho-sim/kho-sim/pkg/timing"
)

// Handover is what crosses from one boot to the next besides memory: the
// KHO root FDT's address (0: no handover, a cold boot) and the number of the
// boot that receives it.
type Handover struct {
	RootPA uint64
	Boot   int
}

// Config describes one boot.
type Config struct {
	Region *physmem.Region
	// Scenario is the scenario this boot runs.
	Scenario *scenario.Scenario
	// In is the handover from the previous boot; In.Boot is this boot's
	// number (1 for the first).
	In Handover
	// Boots is the number of boots in the run (hops + 1).
	Boots int
	// Fix runs the model with the finish-before-retrieve flaw fixed.
	Fix bool
	// Out receives KTAP.
	Out io.Writer
	// Load, when set, loads the next kernel once the image is written (run
	// mode) and returns the phases it measured. Its error sends the boot
	// down the abort path.
	Load func(next Handover) ([]timing.Phase, error)
	// Damage, when set, is applied to the image once it is written and
	// before the next kernel is loaded, and returns what it changed: the
	// corrupted-handover tests.
	Damage func(r *physmem.Region, rootPA uint64) (string, error)
	// DryRun runs the abort path after a successful Load instead of
	// handing over: the whole outgoing side is proven without a reboot.
	DryRun bool
	// Timings measured before Run was called (boot to start, ...), printed
	// with the boot's own.
	Phases []timing.Phase
	// TSCHz is the time-stamp counter's frequency, handed to the next boot
	// to measure the blackout; 0 where no reboot happens.
	TSCHz uint64
	// ABI is this boot's kernel generation: the handover it writes and, unless
	// ReadABI says otherwise, the one it expects to read. "" is 7.0.
	ABI ABI
	// ReadABI, when set, is the generation the incoming side expects, to
	// simulate a hop between kernels of different generations.
	ReadABI ABI
}

// Outcome is how a boot ended.
type Outcome struct {
	// Next is the handover for the next boot; Next.RootPA is 0 for a cold
	// reboot or when the run is over.
	Next Handover
	// Last is true when no boot follows.
	Last bool
	// OK is the boot's verdict.
	OK bool
	// Events are the FLB callbacks of this boot, in order, and Violations
	// the promises they broke (known flaws included).
	Events     []check.Event
	Violations []check.Violation
	// rebootTSC points at the metadata's tsc-reboot value in the region.
	rebootTSC []byte
}

// StampReboot writes the time-stamp counter into the handover right before
// the reboot call, so the next boot can measure the blackout.
func (o *Outcome) StampReboot() {
	if o.rebootTSC != nil {
		binary.LittleEndian.PutUint64(o.rebootTSC, timing.TSC())
	}
}

// tscPlaceholder is written as tsc-reboot and found again in the encoded
// blob, so the value can be patched in place at reboot.
const tscPlaceholder = 0x6b686f2d73696d21

// boot is the state of one simulated kernel. Every field is created afresh
// for each boot: nothing survives but the region.
type boot struct {
	cfg   Config
	sc    *scenario.Scenario
	n     int // this boot's number, 1-based
	boots int
	top   *ktap.Writer
	t     *ktap.Writer
	name  string // the subtest's name and the boot's top-level description

	alloc *physmem.Allocator
	in    *kho.Incoming
	out   *kho.Outgoing
	core  *luo.Core
	chk   *check.Checker

	inMeta   *Meta
	inABI    ABI // the generation the incoming handover is read as
	inBlocks []kho.Block
	// live lists incoming payload ranges not yet finished; their pages stay
	// reserved when the boot releases the rest.
	live map[uint64]uint64

	flbs       map[string]*simFLB
	handlers   map[string]*simHandler
	sessions   map[string]*luo.Session
	inSessions map[string]*luo.Session
	files      map[fileKey]*simFile
	faults     []*fault
	deps       map[string][]string // handler -> FLBs, as kho-sim registered them
	luoPA      uint64

	// mu guards the maps and simFLB state below against the goroutines
	// of parallel steps and the callbacks they cause.
	mu       sync.Mutex
	parallel atomic.Bool

	stepErrs    []string
	payloadErrs []string
	phases      timing.Phases
	stepTimes   []timing.Phase // the steps phase by operation
	totals      [3]int         // passed, failed, skipped top-level results before this boot
}

type fileKey struct {
	session string
	token   uint64
}

// compareFileKeys orders files by session, then token.
func compareFileKeys(a, b fileKey) int {
	if c := strings.Compare(a.session, b.session); c != 0 {
		return c
	}
	return cmp.Compare(a.token, b.token)
}

// Run runs one boot and prints its KTAP. It never fails: every problem,
// including a handover that cannot be read, is a KTAP failure.
func Run(cfg Config) *Outcome {
	b := &boot{
		cfg: cfg, sc: cfg.Scenario, n: max(cfg.In.Boot, 1), boots: cfg.Boots,
		top:  ktap.NewWriter(cfg.Out),
		live: map[uint64]uint64{}, flbs: map[string]*simFLB{}, handlers: map[string]*simHandler{},
		sessions: map[string]*luo.Session{}, inSessions: map[string]*luo.Session{}, files: map[fileKey]*simFile{},
		deps: map[string][]string{},
	}
	for _, p := range cfg.Phases {
		b.phases.Add(p.Name, p.D)
	}
	return b.run()
}

func (b *boot) run() *Outcome {
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

	ok := true
	if !cold {
		ok = b.incoming()
	}
	var out *Outcome
	if ok {
		out = b.lifecycle()
	} else {
		out = &Outcome{Last: true}
	}
	return b.finish(out)
}

// incoming reads and checks the previous boot's handover. It returns false
// when the handover cannot be used at all.
func (b *boot) incoming() bool {
	t0 := time.Now()
	defer func() { b.phases.Add("handover read", time.Since(t0)) }()
	in, err := kho.ReadIncoming(b.cfg.Region, b.cfg.In.RootPA)
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
	if hz := meta.TSCHz; hz != 0 {
		if d, ok := timing.TSCDuration(meta.TSCReboot, timing.TSC(), hz); ok {
			b.phases.Add("blackout", d)
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

// lifecycle sets up the model, runs the boot's steps and hands over.
func (b *boot) lifecycle() *Outcome {
	out, err := b.newOutgoing()
	if !b.result(err == nil, "KHO set up", err) {
		return &Outcome{Last: true}
	}
	b.out = out
	b.core = luo.New(memory{b}, luo.Options{FLB: flb.Options{FixFinishBeforeRetrieve: b.cfg.Fix}, Format: b.abi().LUOFormat(), ReadFormat: b.readABI().LUOFormat()})
	if b.in != nil {
		blob, err := b.incomingLUO()
		if err == nil {
			err = b.core.SetupIncoming(blob)
		}
		if !b.result(err == nil, "the model accepts the incoming "+luoNoun(b.readABI()), err) {
			return &Outcome{Last: true}
		}
	}
	luoPA, err := b.core.SetupOutgoing()
	if err == nil {
		b.luoPA = luoPA
		err = b.publishLUO(luoPA)
	}
	if !b.result(err == nil, "outgoing "+luoNoun(b.abi())+" set up", err) {
		return &Outcome{Last: true}
	}
	b.register()
	if b.in != nil {
		b.chk.Incoming(b.inEntries())
	}

	plan := b.sc.Boot(b.n-1, b.boots)
	t0 := time.Now()
	var byOp timing.Phases
	for _, st := range plan.Steps {
		ts := time.Now()
		b.step(st)
		byOp.Accumulate(st.Op, time.Since(ts))
	}
	b.phases.Add("steps", time.Since(t0))
	b.stepTimes = byOp.List()
	b.chk.Done()
	b.releaseIncoming()

	b.result(len(b.stepErrs) == 0, "every step returned what the scenario expects", errors.New(strings.Join(b.stepErrs, "\n")))
	if b.in != nil {
		b.result(len(b.payloadErrs) == 0, "every retrieved payload matches what was preserved", errors.New(strings.Join(b.payloadErrs, "\n")))
	}

	switch plan.End {
	case scenario.EndKexec:
		return b.handover()
	case scenario.EndKexecFails:
		b.promises()
		b.abort("the scenario's kexec fails after preserve")
		return &Outcome{Last: true}
	case scenario.EndCold:
		// A cold reboot hands nothing over; on a machine the next kernel is
		// still kexec'd, only without kho_sim.fdt= on its command line.
		b.promises()
		next := Handover{Boot: b.n + 1}
		if b.cfg.Load != nil {
			phases, err := b.cfg.Load(next)
			for _, p := range phases {
				b.phases.Add(p.Name, p.D)
			}
			if !b.result(err == nil, "next kernel loaded", err) {
				return &Outcome{Last: true}
			}
		}
		return &Outcome{Next: next}
	}
	b.promises()
	return &Outcome{Last: true}
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
	var f Finding
	return b.sc.Flaw == scenario.FlawLongCompatible && errors.As(err, &f) && losesFLBState(f.Kernel)
}

// handover serializes the outgoing state and writes the image.
func (b *boot) handover() *Outcome {
	t0 := time.Now()
	err := b.core.Serialize()
	if err == nil {
		err = b.checkOutgoingTable()
		if b.lostByFlaw(err) {
			b.t.Diag("known 7.0 flaw %s: %v", b.sc.Flaw, err)
			err = nil
		}
	}
	var root uint64
	var stamp []byte
	if err == nil {
		root, stamp, err = b.writeImage()
	}
	b.phases.Add("serialize", time.Since(t0))
	b.promises()
	if !b.result(err == nil, "handover image written", err) {
		b.abort("the image could not be written")
		return &Outcome{Last: true}
	}
	next := Handover{RootPA: root, Boot: b.n + 1}
	b.t.Diag("handover: kho_sim.fdt=%#x for boot %d", root, next.Boot)
	if b.abi() != ABI70 {
		b.t.Diag("handover generation %s", b.abi().expected())
	}
	if b.cfg.Damage != nil {
		what, err := b.cfg.Damage(b.cfg.Region, root)
		if !b.result(err == nil, "image damaged as asked", err) {
			return &Outcome{Last: true}
		}
		b.t.Diag("damaged: %s", what)
	}
	if b.cfg.Load != nil {
		phases, err := b.cfg.Load(next)
		for _, p := range phases {
			b.phases.Add(p.Name, p.D)
		}
		if !b.result(err == nil, "next kernel loaded", err) {
			b.abort("loading the next kernel failed")
			return &Outcome{Last: true}
		}
		if b.cfg.DryRun {
			b.abort("dry run: the kernel was loaded and unloaded again")
			return &Outcome{Last: true}
		}
	}
	return &Outcome{Next: next, rebootTSC: stamp}
}

// abort runs the kernel's path for a reboot that will not happen: every
// file is unpreserved, so each FLB's unpreserve runs once, and the region is
// left without a handover.
func (b *boot) abort(why string) {
	b.t.Diag("abort path: %s", why)
	err := b.core.Abort()
	b.afterAbort()
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

func violations(c *check.Checker) error {
	var errs []error
	for _, v := range c.Violations() {
		errs = append(errs, errors.New(v.String()))
	}
	return errors.Join(errs...)
}

// finish prints the boot's phase timings and its top-level result.
func (b *boot) finish(o *Outcome) *Outcome {
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

// result prints one subtest result; err explains a failure.
func (b *boot) result(ok bool, desc string, err error) bool {
	b.t.Result(ok, desc, ktap.Directive{})
	if !ok && err != nil && err.Error() != "" {
		b.t.Diag("%s", err.Error())
	}
	return ok
}

// inEntries is the FLB table the previous boot says it handed over.
func (b *boot) inEntries() []check.Entry {
	var e []check.Entry
	for _, f := range b.inMeta.FLBs {
		e = append(e, check.Entry{Name: f.Name, Data: f.Data, Count: f.Count})
	}
	return e
}

// writeImage writes kho-sim's metadata and finalizes KHO.
func (b *boot) writeImage() (uint64, []byte, error) {
	m := &Meta{
		Scenario: b.sc.Name, Boot: b.n, Boots: b.boots, Fix: b.cfg.Fix,
		Passed: b.totals[0], Failed: b.totals[1], Skipped: b.totals[2],
		TSCHz: b.cfg.TSCHz, TSCReboot: tscPlaceholder, LUONumber: 1,
	}
	if b.inMeta != nil {
		m.LUONumber = b.inMeta.LUONumber + 1
	}
	pass, fail, _ := b.t.Counts()
	if fail == 0 && pass > 0 {
		m.Passed++
	} else {
		m.Failed++
	}
	for _, name := range slices.Sorted(maps.Keys(b.flbs)) {
		f := b.flbs[name]
		if f.live {
			m.FLBs = append(m.FLBs, MetaFLB{Name: f.compat, Data: f.data, Count: uint64(f.files), Size: f.info.Size, Seed: f.info.Seed, CRC: f.info.CRC})
		}
	}
	for _, k := range slices.SortedFunc(maps.Keys(b.files), compareFileKeys) {
		f := b.files[k]
		if f.preserved {
			m.Files = append(m.Files, MetaFile{Session: k.session, Token: k.token, Handler: f.handler, Data: f.data, Size: f.info.Size, Seed: f.info.Seed, CRC: f.info.CRC})
		}
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

// releaseIncoming returns the previous boot's pages to this boot's
// allocator, except payloads that were never finished: a kernel that never
// finishes an FLB never frees its memory either.
func (b *boot) releaseIncoming() {
	for _, blk := range b.inBlocks {
		keep := false
		for pa, n := range b.live {
			if blk.PA < pa+n && pa < blk.PA+blk.Size() {
				keep = true
				break
			}
		}
		if !keep {
			_ = b.alloc.Free(blk.PA) // reserved above; cannot be missing
		}
	}
	b.inBlocks = slices.DeleteFunc(b.inBlocks, func(blk kho.Block) bool { return true })
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

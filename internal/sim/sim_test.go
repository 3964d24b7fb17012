package sim

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/kho-sim/kho-sim/internal/check"
	"github.com/kho-sim/kho-sim/internal/scenario"
	"github.com/kho-sim/kho-sim/internal/timing"
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/ktap"
	"github.com/kho-sim/kho-sim/pkg/luo"
	"github.com/kho-sim/kho-sim/pkg/meta"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

const testBase = 0x10000000

// chain runs boots of a scenario on one region the way kho-sim sim does and
// returns every boot's outcome and the whole KTAP stream.
func chain(t testing.TB, sc *scenario.Scenario, boots int, fix bool) ([]*Outcome, string) {
	t.Helper()
	outs, log, _ := chainWith(t, boots, Config{Scenario: sc, Fix: fix}, nil, nil)
	return outs, log
}

// chainWith runs boots on one 16 MiB region: each boot gets base with its
// region, handover, boot count and output, boot n generation abis[(n-1) %
// len] (base's when abis is empty) and boot 1 damage. It returns every
// boot's outcome, the KTAP stream and the region's bytes.
func chainWith(t testing.TB, boots int, base Config, abis []kernel.Generation, damage func(*physmem.Region, uint64) (string, error)) ([]*Outcome, string, []byte) {
	t.Helper()
	mem := make([]byte, 16<<20)
	var out bytes.Buffer
	var outs []*Outcome
	in := Handover{Boot: 1}
	for range boots {
		r, err := physmem.New(testBase, mem)
		if err != nil {
			t.Fatal(err)
		}
		cfg := base
		cfg.Region, cfg.In, cfg.Boots, cfg.Out = r, in, boots, &out
		if len(abis) > 0 {
			cfg.ABI = abis[(in.Boot-1)%len(abis)]
		}
		if in.Boot == 1 {
			cfg.Damage = damage
		}
		o := Run(cfg)
		outs = append(outs, o)
		if o.Last {
			break
		}
		in = o.Next
	}
	return outs, out.String(), mem
}

func lookup(t testing.TB, name string) *scenario.Scenario {
	t.Helper()
	sc, err := scenario.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// TestBuiltinScenarios runs every built-in scenario for three boots, with
// and without the fix, and checks the KTAP stream is valid and passes.
func TestBuiltinScenarios(t *testing.T) {
	all, err := scenario.Builtins()
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range all {
		for _, fix := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/fix=%v", sc.Name, fix), func(t *testing.T) {
				outs, log := chain(t, sc, 3, fix)
				for i, o := range outs {
					if !o.OK {
						t.Errorf("boot %d failed:\n%s", i+1, log)
					}
				}
				rep, err := ktap.Parse(strings.NewReader(log))
				if err != nil {
					t.Fatal(err)
				}
				if !rep.Passed() || rep.Plan != 3 || len(rep.Results) != 3 {
					t.Fatalf("KTAP does not pass (plan %d, %d results):\n%s", rep.Plan, len(rep.Results), log)
				}
				if probs := ktap.Validate(strings.NewReader(log)); len(probs) != 0 {
					t.Fatalf("invalid KTAP: %v\n%s", probs, log)
				}
				if !strings.HasSuffix(log, "# kho-sim: done\n") {
					t.Fatalf("no closing line:\n%s", log)
				}
			})
		}
	}
}

// TestFinishBeforeRetrieve_7_0_NeverFinishes shows the seed's flaw: files
// finish before get_incoming, the count underflows and finish never runs.
func TestFinishBeforeRetrieve_7_0_NeverFinishes(t *testing.T) {
	outs, log := chain(t, lookup(t, "finish-before-retrieve"), 2, false)
	v := outs[1].Violations
	if len(v) != 1 || v[0].Promise != check.FinishedOnceAtLast || !strings.Contains(v[0].Reason, "finish was never called") {
		t.Fatalf("violations %v, want finish never called", v)
	}
	if !strings.Contains(log, "# XFAIL known 7.0 flaw: finish-before-retrieve") {
		t.Fatalf("the flaw is not reported as an expected failure:\n%s", log)
	}
	if slices.ContainsFunc(outs[1].Events, func(e check.Event) bool { return e.Kind == check.Finish }) {
		t.Fatalf("7.0 model called finish: %v", outs[1].Events)
	}
}

// TestFinishBeforeRetrieve_Fixed_FinishesOnce: with the count loaded before
// the first decrement, finish runs exactly once, after the last file.
func TestFinishBeforeRetrieve_Fixed_FinishesOnce(t *testing.T) {
	outs, log := chain(t, lookup(t, "finish-before-retrieve"), 2, true)
	if len(outs[1].Violations) != 0 || strings.Contains(log, "XFAIL") {
		t.Fatalf("fixed model broke a promise: %v\n%s", outs[1].Violations, log)
	}
	var kinds []check.Kind
	for _, e := range outs[1].Events {
		if e.Kind == check.Retrieve || e.Kind == check.Finish {
			kinds = append(kinds, e.Kind)
		}
	}
	if !slices.Equal(kinds, []check.Kind{check.Retrieve, check.Finish}) {
		t.Fatalf("callbacks %v, want retrieve then finish", kinds)
	}
}

// TestRollback_ReverseOrderAndRetry checks the exact callback sequence of a
// preserve that fails on the second of three FLBs.
func TestRollback_ReverseOrderAndRetry(t *testing.T) {
	outs, _ := chain(t, lookup(t, "rollback"), 2, false)
	var got []string
	for _, e := range outs[0].Events {
		s := string(e.Kind) + " " + e.FLB
		if e.Err != nil {
			s += " failed"
		}
		got = append(got, s)
	}
	want := []string{
		"preserve flb-a", "preserve flb-b failed", "unpreserve flb-a", // rollback of file 1's first try
		"preserve flb-a", "preserve flb-b", "preserve flb-c", // the retry; file 2 only counts
	}
	if !slices.Equal(got, want) {
		t.Fatalf("callbacks\n got %q\nwant %q", got, want)
	}
}

// TestAbort_UnpreservesEachFLBOnce: the cancelled reboot unpreserves each
// FLB once, after its last file, and the next kernel finds nothing.
func TestAbort_UnpreservesEachFLBOnce(t *testing.T) {
	outs, log := chain(t, lookup(t, "abort"), 2, false)
	n := map[string]int{}
	for _, e := range outs[0].Events {
		if e.Kind == check.Unpreserve {
			n[e.FLB]++
		}
	}
	if n["iommu-core"] != 1 || n["kvm-global"] != 1 || len(n) != 2 {
		t.Fatalf("unpreserve counts %v, want each FLB once", n)
	}
	if !outs[1].OK || len(outs[1].Events) != 0 {
		t.Fatalf("next boot: ok=%v events %v\n%s", outs[1].OK, outs[1].Events, log)
	}
}

// TestSharing_SavedOnceCountedPerFile: one FLB shared by five files of two
// handlers is preserved once and handed over with count 5.
func TestSharing_SavedOnceCountedPerFile(t *testing.T) {
	outs, log := chain(t, lookup(t, "sharing"), 2, false)
	pres, retr, fin := 0, 0, 0
	for _, e := range outs[0].Events {
		if e.Kind == check.Preserve && e.FLB == "iommu-core" {
			pres++
		}
	}
	for _, e := range outs[1].Events {
		switch {
		case e.Kind == check.Retrieve && e.FLB == "iommu-core":
			retr++
		case e.Kind == check.Finish && e.FLB == "iommu-core":
			fin++
		}
	}
	if pres != 1 || retr != 1 || fin != 1 {
		t.Fatalf("iommu-core preserve/retrieve/finish = %d/%d/%d, want 1/1/1\n%s", pres, retr, fin, log)
	}
}

// TestBrokenPromiseIsReported runs a boot whose FLB table was tampered with
// between boots and checks the failure names what is wrong, without a panic.
func TestBrokenPromiseIsReported(t *testing.T) {
	sc := lookup(t, "default")
	mem := make([]byte, 16<<20)
	r, _ := physmem.New(testBase, mem)
	var out bytes.Buffer
	o := Run(Config{Region: r, Scenario: sc, In: Handover{Boot: 1}, Boots: 2, Out: &out})
	h, err := luo.Read(r, o.Next.RootPA)
	if err != nil {
		t.Fatal(err)
	}
	page, err := r.Bytes(h.FLB.PA, luo.FLBPageSize)
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint64(page[16+48+8:], 99) // first entry's count
	out.Reset()
	r2, _ := physmem.New(testBase, mem)
	o2 := Run(Config{Region: r2, Scenario: sc, In: o.Next, Boots: 2, Out: &out})
	if o2.OK || !strings.Contains(out.String(), "count 99") {
		t.Fatalf("tampered count not reported:\n%s", out.String())
	}
}

// BenchmarkHop measures one full boot (incoming checks, retrieve, finish,
// preserve, serialize, image) of the largest built-in scenario.
func BenchmarkHop(b *testing.B) {
	sc := lookup(b, "registration-limits")
	mem := make([]byte, 16<<20)
	r, _ := physmem.New(testBase, mem)
	first := Run(Config{Region: r, Scenario: sc, In: Handover{Boot: 1}, Boots: meta.MaxBoots, Out: &bytes.Buffer{}})
	if !first.OK {
		b.Fatal("first boot failed")
	}
	in := first.Next
	var out bytes.Buffer
	for b.Loop() {
		out.Reset()
		o := Run(Config{Region: r, Scenario: sc, In: in, Boots: meta.MaxBoots, Out: &out})
		if !o.OK {
			b.Fatalf("boot failed:\n%s", out.String())
		}
		in = o.Next
	}
}

// TestLoad_ConcurrentPromisesHold: goroutines preserve, close, retrieve and
// finish files of handlers sharing FLBs at once; every promise holds.
func TestLoad_ConcurrentPromisesHold(t *testing.T) {
	outs, log := chain(t, lookup(t, "load"), 3, false)
	for i, o := range outs {
		if !o.OK || len(o.Violations) != 0 {
			t.Fatalf("boot %d: ok=%v violations %v\n%s", i+1, o.OK, o.Violations, log)
		}
	}
	pres, unpres := 0, 0
	for _, e := range outs[0].Events {
		if e.FLB == "iommu-core" && e.Kind == check.Preserve {
			pres++
		}
		if e.FLB == "iommu-core" && e.Kind == check.Unpreserve {
			unpres++
		}
	}
	// churn saves and drops the state at least once, then preserve-all
	// leaves it saved.
	if pres < 2 || pres != unpres+1 {
		t.Fatalf("iommu-core preserved %d, unpreserved %d times", pres, unpres)
	}
}

// TestManyHops: ten hops with FLBs coming and going; liveupdate-number
// and every payload are checked at each hop.
func TestManyHops(t *testing.T) {
	outs, log := chain(t, lookup(t, "many-hops"), 11, false)
	if len(outs) != 11 {
		t.Fatalf("%d boots ran, want 11", len(outs))
	}
	for i, o := range outs {
		if !o.OK {
			t.Fatalf("boot %d failed:\n%s", i+1, log)
		}
	}
	seen := map[string]int{}
	for _, o := range outs[1:] {
		for _, e := range o.Events {
			if e.Kind == check.Retrieve {
				seen[e.FLB]++
			}
		}
	}
	if seen["iommu-core"] < 3 || seen["memfd-shared"] < 3 {
		t.Fatalf("retrieves per FLB over ten hops: %v", seen)
	}
}

func kinds(events []check.Event) []string {
	var out []string
	for _, e := range events {
		s := string(e.Kind) + " " + e.FLB
		if e.Err != nil {
			s += " failed"
		}
		out = append(out, s)
	}
	return out
}

// TestFaults_HandlerPreserveFailureUnpreservesFLBsInReverse: luo_file.c
// preserves the FLBs before the handler, so a failing handler preserve
// unpreserves them again, newest first.
func TestFaults_HandlerPreserveFailureUnpreservesFLBsInReverse(t *testing.T) {
	outs, log := chain(t, lookup(t, "faults"), 2, false)
	want := []string{
		"preserve iommu-core", "preserve kvm-global", "unpreserve kvm-global", "unpreserve iommu-core",
		"preserve iommu-core", "preserve kvm-global",
	}
	if got := kinds(outs[0].Events); !slices.Equal(got, want) {
		t.Fatalf("boot 1 callbacks\n got %q\nwant %q", got, want)
	}
	got := kinds(outs[1].Events)
	if len(got) < 3 || got[0] != "retrieve iommu-core failed" || got[1] != "retrieve iommu-core" {
		t.Fatalf("boot 2 callbacks %q: want a failed retrieve, then a retry", got)
	}
	if !outs[0].OK || !outs[1].OK {
		t.Fatalf("a fault the scenario expects failed the boot:\n%s", log)
	}
}

// TestKexecFails_AbortUnpreservesEachFLBOnce: the run stops after the abort
// path, and the remaining boots are accounted for as skipped.
func TestKexecFails_AbortUnpreservesEachFLBOnce(t *testing.T) {
	outs, log := chain(t, lookup(t, "kexec-fails"), 3, false)
	if len(outs) != 1 || !outs[0].Last || !outs[0].OK {
		t.Fatalf("want one passing, last boot; got %d\n%s", len(outs), log)
	}
	n := map[string]int{}
	for _, e := range outs[0].Events {
		if e.Kind == check.Unpreserve {
			n[e.FLB]++
		}
	}
	if n["iommu-core"] != 1 || n["kvm-global"] != 1 {
		t.Fatalf("unpreserve counts %v", n)
	}
	if !strings.Contains(log, "ok 3 boot-3 # SKIP no boot: the run stopped at boot 1") {
		t.Fatalf("remaining boots not skipped:\n%s", log)
	}
}

// TestColdReboot_NoHandover: after a cold reboot get_incoming is ENODATA
// and liveupdate-number starts again at 1.
func TestColdReboot_NoHandover(t *testing.T) {
	outs, log := chain(t, lookup(t, "cold-reboot"), 5, false)
	for i, o := range outs {
		if !o.OK {
			t.Fatalf("boot %d failed:\n%s", i+1, log)
		}
	}
	if !strings.Contains(log, "boot-2 cold boot") || !strings.Contains(log, "boot-4 cold boot") {
		t.Fatalf("boots 2 and 4 should start cold:\n%s", log)
	}
}

// TestLongCompatible_StateLost: a 48-character compatible is cut to 47 when
// serialized, so the next kernel never retrieves or finishes that FLB.
func TestLongCompatible_StateLost(t *testing.T) {
	const long = "vfio-iommu-core-state-with-a-48-character-compat"
	outs, log := chain(t, lookup(t, "long-compatible"), 2, false)
	if !outs[0].OK || !outs[1].OK {
		t.Fatalf("the known flaw failed a boot:\n%s", log)
	}
	for _, e := range outs[1].Events {
		if e.FLB == long && (e.Kind == check.Retrieve || e.Kind == check.Finish) {
			t.Fatalf("the cut FLB was %s in the next kernel", e.Kind)
		}
	}
	if !strings.Contains(log, `FLB "`+long[:47]+`" in the table but never preserved`) {
		t.Fatalf("the cut name is not reported:\n%s", log)
	}
	if !slices.ContainsFunc(outs[1].Violations, func(v check.Violation) bool {
		return v.Promise == check.FinishedOnceAtLast && v.FLB == long
	}) {
		t.Fatalf("violations %v: want finish never called for %s", outs[1].Violations, long)
	}
}

// TestColdReboot_StillLoadsTheNextKernel: on a machine the cold reboot is a
// kexec without a handover, so the next kernel must be loaded all the same.
func TestColdReboot_StillLoadsTheNextKernel(t *testing.T) {
	r, _ := physmem.New(testBase, make([]byte, 16<<20))
	var loaded []Handover
	o := Run(Config{Region: r, Scenario: lookup(t, "cold-reboot"), In: Handover{Boot: 1}, Boots: 3, Out: &bytes.Buffer{},
		Load: func(next Handover) ([]timing.Phase, error) { loaded = append(loaded, next); return nil, nil }})
	if !o.OK || o.Last || len(loaded) != 1 || loaded[0] != (Handover{Boot: 2}) || o.Next != loaded[0] {
		t.Fatalf("ok=%v last=%v loaded %v next %v; want one load of boot 2 without a handover", o.OK, o.Last, loaded, o.Next)
	}
}

// TestStepsTimedByOperation: each boot splits its steps phase by scenario
// operation, in the order each first ran, one diagnostic line per boot.
func TestStepsTimedByOperation(t *testing.T) {
	_, out := chain(t, lookup(t, "sharing"), 2, false)
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if _, rest, ok := strings.Cut(l, "# steps by operation: "); ok {
			lines = append(lines, rest)
		}
	}
	if len(lines) != 2 {
		t.Fatalf("%d lines of step timings, want one per boot:\n%s", len(lines), out)
	}
	for i, want := range [][]string{{"preserve-all"}, {"retrieve-all", "get-incoming", "finish", "preserve-all"}} {
		var ops []string
		for _, part := range strings.Split(lines[i], ", ") {
			var op string
			var ms float64
			if n, err := fmt.Sscanf(part, "%s %f ms", &op, &ms); n != 2 || err != nil || ms < 0 {
				t.Fatalf("boot %d: %q: %v", i+1, part, err)
			}
			ops = append(ops, op)
		}
		if !slices.Equal(ops, want) {
			t.Errorf("boot %d: operations %v, want %v", i+1, ops, want)
		}
	}
}

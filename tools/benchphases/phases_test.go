package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestParsePhase(t *testing.T) {
	tests := []struct {
		diag string
		want Phase
		ok   bool
	}{
		{"phase steps 4.9 ms", Phase{Name: "steps", D: 4900 * time.Microsecond}, true},
		{"phase boot to start 1972.2 ms", Phase{Name: "boot to start", D: 1972200 * time.Microsecond}, true},
		{"phase kexec_file_load (kexec-tools) 2611.6 ms", Phase{Name: "kexec_file_load", Note: "kexec-tools", D: 2611600 * time.Microsecond}, true},
		{"phase initramfs repack (64 files, 23564 KiB) 461.9 ms", Phase{Name: "initramfs repack", Note: "64 files, 23564 KiB", D: 461900 * time.Microsecond}, true},
		{"phase blackout 0.0 ms", Phase{Name: "blackout"}, true},
		{"phase steps 4.9 s", Phase{}, false},
		{"phase steps -1.0 ms", Phase{}, false},
		{"phase steps NaN ms", Phase{}, false},
		{"phase steps 1e300 ms", Phase{}, false},
		{"phase 4.9 ms", Phase{}, false},
		{"phase  4.9 ms", Phase{}, false},
		{"phase (x) 4.9 ms", Phase{}, false},
		{"handover: kho_sim.fdt=0x10000000 for boot 2", Phase{}, false},
		{"phase", Phase{}, false},
	}
	for _, tt := range tests {
		got, ok := ParsePhase(tt.diag)
		if ok != tt.ok || got != tt.want {
			t.Errorf("ParsePhase(%q) = %+v, %v; want %+v, %v", tt.diag, got, ok, tt.want, tt.ok)
		}
	}
}

func TestSummarize(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	tests := []struct {
		name string
		in   []time.Duration
		want Stats
	}{
		{"none", nil, Stats{}},
		{"one", ms(7), Stats{N: 1, Median: 7 * time.Millisecond, Min: 7 * time.Millisecond, Max: 7 * time.Millisecond}},
		{"odd, unsorted", ms(9, 1, 5), Stats{N: 3, Median: 5 * time.Millisecond, Min: time.Millisecond, Max: 9 * time.Millisecond}},
		{"even takes the mean of the middle two", ms(4, 1, 10, 2), Stats{N: 4, Median: 3 * time.Millisecond, Min: time.Millisecond, Max: 10 * time.Millisecond}},
	}
	for _, tt := range tests {
		in := append([]time.Duration(nil), tt.in...)
		if got := Summarize(tt.in); got != tt.want {
			t.Errorf("%s: Summarize = %+v, want %+v", tt.name, got, tt.want)
		}
		for i := range in {
			if in[i] != tt.in[i] {
				t.Errorf("%s: Summarize reordered its input", tt.name)
			}
		}
	}
}

func p(name, note string, ms int) Phase {
	return Phase{Name: name, Note: note, D: time.Duration(ms) * time.Millisecond}
}

func TestAddAttributesPhasesToLoaders(t *testing.T) {
	chain := []Boot{
		{OK: true, Phases: []Phase{p(phaseBootToStart, "", 100), p(phaseSteps, "", 1), p(phaseLoad, "", 10)}},
		{OK: true, Phases: []Phase{p(phaseBootToStart, "", 200), p(phaseBlackout, "", 1000), p(phaseSteps, "", 2), p(phaseLoad, loaderKexecTools, 20)}},
		{OK: true, Phases: []Phase{p(phaseBootToStart, "", 300), p(phaseBlackout, "", 3000), p(phaseSteps, "", 3)}},
	}
	s := Samples{}
	s.Add(chain)
	want := map[string]map[string][]int{
		// boot 1's way in is QEMU's cold boot: nobody's.
		phaseBootToStart: {loaderKhoSim: {200}, loaderKexecTools: {300}},
		phaseBlackout:    {loaderKhoSim: {1000}, loaderKexecTools: {3000}},
		// the last boot loads nothing: its steps are nobody's.
		phaseSteps: {loaderKhoSim: {1}, loaderKexecTools: {2}},
		phaseLoad:  {loaderKhoSim: {10}, loaderKexecTools: {20}},
		phaseHop:   {loaderKhoSim: {1010}, loaderKexecTools: {3020}},
	}
	if len(s) != len(want) {
		t.Errorf("phases = %v, want %d of them", s.Phases(), len(want))
	}
	for phase, byLoader := range want {
		for loader, v := range byLoader {
			got := s[phase][loader]
			if len(got) != len(v) {
				t.Errorf("%s/%s = %v, want %v ms", phase, loader, got, v)
				continue
			}
			for i := range v {
				if got[i] != time.Duration(v[i])*time.Millisecond {
					t.Errorf("%s/%s = %v, want %v ms", phase, loader, got, v)
				}
			}
		}
		if n := len(s[phase]); n != len(byLoader) {
			t.Errorf("%s has %d loaders, want %d", phase, n, len(byLoader))
		}
	}
	if r, ok := s.Ratio(phaseLoad); !ok || r != 0.5 {
		t.Errorf("Ratio(load) = %v, %v; want 0.5", r, ok)
	}
}

func TestAddSkipsFailedBoots(t *testing.T) {
	chain := []Boot{
		{OK: true, Phases: []Phase{p(phaseLoad, "", 10)}},
		{OK: false, Phases: []Phase{p(phaseBlackout, "", 1000), p(phaseLoad, "", 20)}},
		{OK: true, Phases: []Phase{p(phaseBlackout, "", 3000), p(phaseSteps, "", 3)}},
	}
	s := Samples{}
	s.Add(chain)
	if got := s[phaseLoad][loaderKhoSim]; len(got) != 1 || got[0] != 10*time.Millisecond {
		t.Errorf("load samples = %v, want only the passing boot's 10ms", got)
	}
	if _, ok := s[phaseBlackout]; ok {
		t.Errorf("blackout samples = %v: neither blackout follows a passing boot's load", s[phaseBlackout])
	}
	if _, ok := s[phaseHop]; ok {
		t.Errorf("hop samples = %v, want none", s[phaseHop])
	}
}

func TestRatioNeedsBothSides(t *testing.T) {
	s := Samples{}
	s.add(phaseLoad, loaderKhoSim, time.Second)
	if _, ok := s.Ratio(phaseLoad); ok {
		t.Error("Ratio with no kexec-tools sample is ok")
	}
	s.add(phaseLoad, loaderKexecTools, 0)
	if _, ok := s.Ratio(phaseLoad); ok {
		t.Error("Ratio over a zero median is ok")
	}
}

func TestParseLogOfAMixedChain(t *testing.T) {
	f, err := os.Open("testdata/mixed-4boots.log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	boots, err := ParseLog(f)
	if err != nil {
		t.Fatal(err)
	}
	wantLoaders := []string{loaderKexecTools, loaderKhoSim, loaderKexecTools, ""}
	if len(boots) != len(wantLoaders) {
		t.Fatalf("%d boots, want %d", len(boots), len(wantLoaders))
	}
	for i, b := range boots {
		if !b.OK {
			t.Errorf("boot %d not OK", i+1)
		}
		if got := b.Loader(); got != wantLoaders[i] {
			t.Errorf("boot %d loader = %q, want %q", i+1, got, wantLoaders[i])
		}
	}
	if d, ok := find(boots[1].Phases, phaseLoad); !ok || d != 1391500*time.Microsecond {
		t.Errorf("boot 2 kexec_file_load = %v, %v; want 1391.5ms", d, ok)
	}
	if n := len(boots[3].Phases); n != 5 {
		t.Errorf("boot 4 has %d phases, want 5", n)
	}
}

func TestParseLogOfAFailedLoad(t *testing.T) {
	f, err := os.Open("testdata/kexec-tools-fails.log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	boots, err := ParseLog(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(boots) != 2 || boots[0].OK || boots[1].OK {
		t.Fatalf("boots = %+v, want two that did not pass", boots)
	}
	s := Samples{}
	s.Add(boots)
	if len(s) != 0 {
		t.Errorf("samples from a failed chain: %v", s.Phases())
	}
}

func TestRun(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		contains []string
	}{
		{"table", []string{"-wall", "30.5, 31.5", "-machine", "test box", "testdata/mixed-4boots.log"}, 0, []string{
			"| kexec_file_load | 1391.5 ms | 1391.5-1391.5 | 1 | 2338.8 ms | 2066.0-2611.6 | 2 | 0.59 |",
			"| blackout (reboot call to next kho-sim) | 7907.2 ms |",
			"1 runs, 4 of 4 boots passed; wall time of a whole run: median 31.0 s (30.5-31.5 s, n=2).",
			"kexec_file_load: kho-sim / kexec-tools = 0.59 (medians).",
			"Machine: test box",
		}},
		{"no passing boot", []string{"testdata/kexec-tools-fails.log"}, 1, nil},
		{"no log", nil, 2, nil},
		{"missing log", []string{"testdata/none.log"}, 2, nil},
		{"bad wall", []string{"-wall", "x", "testdata/mixed-4boots.log"}, 2, nil},
		{"bad flag", []string{"-nope"}, 2, nil},
	}
	for _, tt := range tests {
		var out, errs strings.Builder
		code := run(tt.args, &out, &errs)
		if code != tt.code {
			t.Errorf("%s: exit %d, want %d; stderr %s", tt.name, code, tt.code, errs.String())
		}
		for _, c := range tt.contains {
			if !strings.Contains(out.String(), c) {
				t.Errorf("%s: output lacks %q:\n%s", tt.name, c, out.String())
			}
		}
	}
}

// TestHops: a hop needs both boots to pass and every phase it is made of;
// its share is (start to load + repack) / (those + load + next blackout).
func TestHops(t *testing.T) {
	out := func(load string) []Phase {
		return []Phase{p(phaseStartToLoad, "", 60), p(phaseRepack, "24 files, 1 KiB", 40), p(phaseLoad, load, 900)}
	}
	in := func(rest ...Phase) []Phase { return append([]Phase{p(phaseBlackout, "", 4000)}, rest...) }
	chain := []Boot{
		{OK: true, Phases: out("")},
		{OK: true, Phases: in(out(loaderKexecTools)...)},
		{OK: true, Phases: in(out("")...)},
		{OK: false, Phases: in(out("")...)},                                        // a failed boot ends two hops
		{OK: true, Phases: in(p(phaseStartToLoad, "", 60), p(phaseLoad, "", 900))}, // no repack: no hop
		{OK: true, Phases: in()},
	}
	hops := Hops(chain)
	want := []Hop{
		{Loader: loaderKhoSim, User: 100 * time.Millisecond, Wall: 5000 * time.Millisecond},
		{Loader: loaderKexecTools, User: 100 * time.Millisecond, Wall: 5000 * time.Millisecond},
	}
	if len(hops) != len(want) || hops[0] != want[0] || hops[1] != want[1] {
		t.Fatalf("Hops = %+v, want %+v", hops, want)
	}
	if s := hops[0].Share(); s != 0.02 {
		t.Errorf("share %v, want 0.02", s)
	}
	var sb strings.Builder
	if err := WriteShare(&sb, hops); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"kho-sim userspace share of a hop, all hops: median 2.0% (2.0-2.0%, n=2); userspace median 100.0 ms of a 5000 ms hop.",
		"kho-sim userspace share of a hop, kho-sim loading: median 2.0% (2.0-2.0%, n=1)",
		"kho-sim userspace share of a hop, kexec-tools loading: median 2.0% (2.0-2.0%, n=1)",
	} {
		if !strings.Contains(sb.String(), line) {
			t.Errorf("no %q in:\n%s", line, sb.String())
		}
	}
}

// TestHopsRetained: a boot that hands over the initramfs its kernel kept
// (retain_initrd) has that phase in the repack's place.
func TestHopsRetained(t *testing.T) {
	chain := []Boot{
		{OK: true, Phases: []Phase{p(phaseStartToLoad, "", 60), p(phaseRetained, "/sys/firmware/initrd, 11620 KiB", 1), p(phaseLoad, "", 900)}},
		{OK: true, Phases: []Phase{p(phaseBlackout, "", 4000)}},
	}
	want := Hop{Loader: loaderKhoSim, User: 61 * time.Millisecond, Wall: 4961 * time.Millisecond}
	if hops := Hops(chain); len(hops) != 1 || hops[0] != want {
		t.Fatalf("Hops = %+v, want %+v", hops, want)
	}
}

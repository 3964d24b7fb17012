package e2e

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/kho-sim/kho-sim/pkg/ktap"
)

func readLog(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("testdata/qemu-3boots.log")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// cutAfter returns log up to and including the first line containing marker.
func cutAfter(t *testing.T, log, marker string) string {
	t.Helper()
	i := strings.Index(log, marker)
	if i < 0 {
		t.Fatalf("marker %q not in log", marker)
	}
	return log[:i+len(marker)] + "\n"
}

func replaceOnce(t *testing.T, log, old, new string) string {
	t.Helper()
	if !strings.Contains(log, old) {
		t.Fatalf("%q not in log", old)
	}
	return strings.Replace(log, old, new, 1)
}

func TestJudge(t *testing.T) {
	full := readLog(t)
	tests := []struct {
		name         string
		log          string
		boots        int
		wantPass     bool
		wantOK       []bool // per boot
		wantProblems []string
	}{
		{name: "real 3-boot QEMU log", log: full, boots: 3, wantPass: true, wantOK: []bool{true, true, true}},
		{name: "boots taken from plan", log: full, boots: 0, wantPass: true, wantOK: []bool{true, true, true}},
		{name: "more boots wanted", log: full, boots: 4, wantOK: []bool{true, true, true},
			wantProblems: []string{"plan is 1..3, want 1..4", "3 boots reported, want 4"}},
		{name: "subtest result fails",
			log:          replaceOnce(t, full, "    ok 3 LUO FDT", "    not ok 3 LUO FDT"),
			boots:        3,
			wantOK:       []bool{true, false, true},
			wantProblems: []string{"boot 2 (boot-2 hop 1, scenario default): failed: 3 LUO FDT and FLB table match what the previous boot preserved"}},
		{name: "top-level result fails",
			log:          replaceOnce(t, full, "\nok 3 boot-3", "\nnot ok 3 boot-3"),
			boots:        3,
			wantOK:       []bool{true, true, false},
			wantProblems: []string{"boot 3 (boot-3 hop 2, scenario default): failed"}},
		{name: "log cut inside the last boot",
			log:    cutAfter(t, full, "    # Subtest: boot-3 hop 2, scenario default"),
			boots:  3,
			wantOK: []bool{true, true, false},
			wantProblems: []string{
				"boot 3 (boot-3 hop 2, scenario default): no result line (the boot died or the log was cut)",
				`no "# kho-sim: done" line: the last boot did not finish`,
			}},
		{name: "last boot never came",
			log:    cutAfter(t, full, "\nok 2 boot-2"),
			boots:  3,
			wantOK: []bool{true, true},
			wantProblems: []string{
				"2 boots reported, want 3",
				`no "# kho-sim: done" line: the last boot did not finish`,
			}},
		{name: "no done line",
			log:          replaceOnce(t, full, "# kho-sim: done", "# kho-sim: still going"),
			boots:        3,
			wantOK:       []bool{true, true, true},
			wantProblems: []string{`no "# kho-sim: done" line: the last boot did not finish`}},
		{name: "boot without subtest",
			log:          "KTAP version 1\n1..1\nok 1 boot-1 cold\n# kho-sim: done\n",
			boots:        1,
			wantOK:       []bool{false},
			wantProblems: []string{"boot 1 (boot-1 cold): no subtest"}},
		{name: "subtest without results",
			log:          "KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: boot-1 cold\n    1..0\nok 1 boot-1 cold\n# kho-sim: done\n",
			boots:        1,
			wantOK:       []bool{true},
			wantProblems: []string{"boot 1 (boot-1 cold): subtest has no results"}},
		{name: "plan after results",
			log:    "KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: boot-1 cold\n    ok 1 a\n    1..1\nok 1 boot-1 cold\n# kho-sim: done\n",
			boots:  1,
			wantOK: []bool{false},
			wantProblems: []string{"boot 1 (boot-1 cold): failed",
				"boot-1 cold: plan on line 6 comes after results"}},
		{name: "misnumbered results",
			log: "KTAP version 1\n1..2\n" +
				"    KTAP version 1\n    1..1\n    ok 1 a\nok 1 boot-1 cold\n" +
				"    KTAP version 1\n    1..1\n    ok 1 a\nok 1 boot-2 hop 1\n# kho-sim: done\n",
			boots:        2,
			wantPass:     false,
			wantOK:       []bool{true, true},
			wantProblems: []string{"report did not pass (numbering or plan mismatch)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := ktap.Parse(strings.NewReader(tt.log))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			v := Judge(rep, tt.boots)
			if got := v.Passed(); got != tt.wantPass {
				t.Errorf("Passed() = %v, want %v; problems %q", got, tt.wantPass, v.Problems)
			}
			var gotOK []bool
			for _, b := range v.Boots {
				gotOK = append(gotOK, b.OK)
			}
			if !slices.Equal(gotOK, tt.wantOK) {
				t.Errorf("per-boot OK = %v, want %v", gotOK, tt.wantOK)
			}
			if !slices.Equal(v.Problems, tt.wantProblems) {
				t.Errorf("problems:\n got %q\nwant %q", v.Problems, tt.wantProblems)
			}
		})
	}
}

func TestJudgeCollectsPhases(t *testing.T) {
	rep, err := ktap.Parse(strings.NewReader(readLog(t)))
	if err != nil {
		t.Fatal(err)
	}
	v := Judge(rep, 3)
	want := [][]string{
		{"boot to start", "region map", "steps", "serialize", "start to load", "initramfs repack", "kexec_file_load"},
		{"boot to start", "region map", "blackout", "handover read", "steps", "serialize", "start to load", "initramfs repack", "kexec_file_load"},
		{"boot to start", "region map", "blackout", "handover read", "steps"},
	}
	if len(v.Boots) != len(want) {
		t.Fatalf("%d boots, want %d", len(v.Boots), len(want))
	}
	for i, b := range v.Boots {
		if len(b.Phases) != len(want[i]) {
			t.Errorf("boot %d phases = %q, want %d", i+1, b.Phases, len(want[i]))
			continue
		}
		for j, p := range b.Phases {
			if !strings.HasPrefix(p, "phase "+want[i][j]+" ") {
				t.Errorf("boot %d phase %d = %q, want %q", i+1, j, p, want[i][j])
			}
		}
	}
	if len(v.Phases) != 0 {
		t.Errorf("top-level phases = %q, want none", v.Phases)
	}
}

func TestJudgeTopLevelPhases(t *testing.T) {
	log := "KTAP version 1\n1..1\n    KTAP version 1\n    1..1\n    ok 1 a\n    # phase steps 1 ms\n" +
		"ok 1 boot-1\n# phase kexec 2 ms\n# not a phase\n# kho-sim: done\n"
	rep, err := ktap.Parse(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	v := Judge(rep, 1)
	if !v.Passed() || !slices.Equal(v.Phases, []string{"phase kexec 2 ms"}) || !slices.Equal(v.Boots[0].Phases, []string{"phase steps 1 ms"}) {
		t.Errorf("Judge = %+v", v)
	}
}

func TestJudgeNilReport(t *testing.T) {
	v := Judge(nil, 3)
	if v.Passed() || len(v.Boots) != 0 {
		t.Errorf("Judge(nil) = %+v, want a failure without boots", v)
	}
}

func TestWriteSummary(t *testing.T) {
	tests := []struct {
		name string
		log  string
		want []string
	}{
		{name: "pass", log: readLog(t), want: []string{
			"ok   1 boot-1 cold boot, scenario default: 11/11 passed\n",
			"ok   2 boot-2 hop 1, scenario default: 16/16 passed\n",
			"       phase blackout 26137.3 ms\n",
			"PASS: 3 boots, 2 kexec hops\n",
		}},
		{name: "fail", log: replaceOnce(t, readLog(t), "    ok 10 handover image written", "    not ok 10 handover image written"), want: []string{
			"FAIL 1 boot-1 cold boot, scenario default: 10/11 passed\n",
			"problem: boot 1 (boot-1 cold boot, scenario default): failed: 10 handover image written\n",
			"FAIL\n",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := ktap.Parse(strings.NewReader(tt.log))
			if err != nil {
				t.Fatal(err)
			}
			var sb strings.Builder
			if err := Judge(rep, 3).WriteSummary(&sb); err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(sb.String(), w) {
					t.Errorf("summary lacks %q:\n%s", w, sb.String())
				}
			}
		})
	}
}

func parseLog(t *testing.T, name string) *ktap.Report {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := ktap.Parse(strings.NewReader(string(b)))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return rep
}

// TestJudgeExpect judges real QEMU serial logs of runs that fail, skip or
// fail as expected on purpose.
func TestJudgeExpect(t *testing.T) {
	const (
		missingFLB   = "qemu-corrupt-missing-flb-node.log"
		bitflip      = "qemu-corrupt-payload-bitflip.log"
		kexecFails   = "qemu-kexec-fails.log"
		finishBefore = "qemu-finish-before-retrieve.log"
		allPass      = "qemu-3boots.log"
		noFLBNode    = "LUO FDT has no luo-flb node; the 7.0 kernel panics at boot"
	)
	tests := []struct {
		name         string
		log          string
		want         Expect
		wantProblems []string
	}{
		{name: "expected corruption reason", log: missingFLB,
			want: Expect{Boots: 2, Fail: map[int]string{2: noFLBNode}}},
		{name: "corruption without expectation", log: missingFLB,
			want:         Expect{Boots: 2},
			wantProblems: []string{"boot 2 (boot-2 hop 1, scenario default): failed: 3 LUO FDT and FLB table match what the previous boot preserved"}},
		{name: "corruption with another reason", log: missingFLB,
			want: Expect{Boots: 2, Fail: map[int]string{2: "CRC32C"}},
			wantProblems: []string{`boot 2 (boot-2 hop 1, scenario default): failed, but no failure says "CRC32C": ` +
				"not ok 3 LUO FDT and FLB table match what the previous boot preserved: " + noFLBNode + " (liveupdate_early_init)"}},
		{name: "failure expected in the wrong boot", log: missingFLB,
			want: Expect{Boots: 2, Fail: map[int]string{1: noFLBNode}},
			wantProblems: []string{
				`boot 1 (boot-1 cold boot, scenario default): passed, want a failure saying "` + noFLBNode + `"`,
				"boot 2 (boot-2 hop 1, scenario default): failed: 3 LUO FDT and FLB table match what the previous boot preserved",
			}},
		{name: "payload checksum", log: bitflip,
			want: Expect{Boots: 2, Fail: map[int]string{2: "CRC32C"}}},
		{name: "failure expected of a boot never reported", log: allPass,
			want:         Expect{Boots: 3, Fail: map[int]string{4: "x"}},
			wantProblems: []string{"boot 4: not reported, want a failure"}},
		{name: "boot skipped as expected", log: kexecFails,
			want: Expect{Boots: 2, Skip: map[int]string{2: "no boot: the run stopped at boot 1"}}},
		{name: "skipped boot without expectation", log: kexecFails,
			want:         Expect{Boots: 2},
			wantProblems: []string{"boot 2 (boot-2): no subtest"}},
		{name: "skip with another reason", log: kexecFails,
			want:         Expect{Boots: 2, Skip: map[int]string{2: "stopped at boot 7"}},
			wantProblems: []string{`boot 2 (boot-2): SKIP "no boot: the run stopped at boot 1", want one saying "stopped at boot 7"`}},
		{name: "skip expected of a boot that ran", log: allPass,
			want:         Expect{Boots: 3, Skip: map[int]string{3: "no boot"}},
			wantProblems: []string{`boot 3 (boot-3 hop 2, scenario default): ran, want a SKIP saying "no boot"`}},
		{name: "known flaw as XFAIL", log: finishBefore,
			want: Expect{Boots: 3, XFail: map[int]string{2: "finish was never called", 3: "finish exactly once"}}},
		{name: "XFAIL tolerated without expectation", log: finishBefore,
			want: Expect{Boots: 3}},
		{name: "XFAIL expected of a boot without one", log: finishBefore,
			want:         Expect{Boots: 3, XFail: map[int]string{1: "finish was never called"}},
			wantProblems: []string{`boot 1 (boot-1 cold boot, scenario finish-before-retrieve): no XFAIL result says "finish was never called"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := JudgeExpect(parseLog(t, tt.log), tt.want)
			if !slices.Equal(v.Problems, tt.wantProblems) {
				t.Errorf("problems:\n got %q\nwant %q", v.Problems, tt.wantProblems)
			}
			if v.Passed() != (len(tt.wantProblems) == 0) {
				t.Errorf("Passed() = %v with problems %q", v.Passed(), v.Problems)
			}
		})
	}
}

func TestJudgeExpectNumbering(t *testing.T) {
	log := "KTAP version 1\n1..2\n" +
		"    KTAP version 1\n    1..1\n    ok 1 a\nok 1 boot-1\n" +
		"    KTAP version 1\n    1..1\n    not ok 1 a\n    # broken\nnot ok 3 boot-2\n# kho-sim: done\n"
	rep, err := ktap.Parse(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	v := JudgeExpect(rep, Expect{Boots: 2, Fail: map[int]string{2: "broken"}})
	want := []string{"report did not pass (numbering or plan mismatch)"}
	if !slices.Equal(v.Problems, want) {
		t.Errorf("problems = %q, want %q", v.Problems, want)
	}
}

func TestBootNotes(t *testing.T) {
	v := Judge(parseLog(t, "qemu-finish-before-retrieve.log"), 3)
	want := Note{
		Result: "ok 13 finish exactly once when the last dependent file finishes # XFAIL known 7.0 flaw: finish-before-retrieve",
		XFail:  true,
		Diags:  []string{"iommu-core: all 2 dependent files finished but finish was never called"},
	}
	for i, b := range v.Boots {
		var wantNotes []Note
		if i > 0 {
			wantNotes = []Note{want}
		}
		if !slices.EqualFunc(b.Notes, wantNotes, func(a, b Note) bool {
			return a.Result == b.Result && a.XFail == b.XFail && slices.Equal(a.Diags, b.Diags)
		}) {
			t.Errorf("boot %d notes = %+v, want %+v", i+1, b.Notes, wantNotes)
		}
	}
}

func TestWriteSummaryExpected(t *testing.T) {
	tests := []struct {
		log  string
		want Expect
		text []string
	}{
		{log: "qemu-kexec-fails.log", want: Expect{Boots: 2, Skip: map[int]string{2: "no boot"}}, text: []string{
			"ok   1 boot-1 cold boot, scenario kexec-fails: 10/10 passed\n",
			"SKIP 2 boot-2: no boot: the run stopped at boot 1\n",
			"PASS: 2 boots",
		}},
		{log: "qemu-corrupt-payload-bitflip.log", want: Expect{Boots: 2, Fail: map[int]string{2: "CRC32C"}}, text: []string{
			"FAIL 2 boot-2 hop 1, scenario default: 9/14 passed\n",
			"       not ok 8 every retrieved payload matches what was preserved: FLB iommu-core: payload \"iommu-core\": CRC32C",
			"PASS: 2 boots",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.log, func(t *testing.T) {
			var sb strings.Builder
			if err := JudgeExpect(parseLog(t, tt.log), tt.want).WriteSummary(&sb); err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.text {
				if !strings.Contains(sb.String(), w) {
					t.Errorf("summary lacks %q:\n%s", w, sb.String())
				}
			}
		})
	}
}

// TestJudgeNotesLeaveTimingsOut: the reasons noted under a failed result
// are its diagnostics without the boot's timing lines that follow the
// last result.
func TestJudgeNotesLeaveTimingsOut(t *testing.T) {
	log := "KTAP version 1\n1..1\n    KTAP version 1\n    1..1\n    not ok 1 payloads match\n    # CRC32C differs\n" +
		"    # phase steps 1 ms\n    # steps by operation: preserve-all 1.000 ms\nnot ok 1 boot-1\n# kho-sim: done\n"
	rep, err := ktap.Parse(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	v := Judge(rep, 1)
	if len(v.Boots) != 1 || len(v.Boots[0].Notes) != 1 {
		t.Fatalf("Judge = %+v", v)
	}
	if got := v.Boots[0].Notes[0].Diags; !slices.Equal(got, []string{"CRC32C differs"}) {
		t.Errorf("notes %q, want only the reason", got)
	}
}

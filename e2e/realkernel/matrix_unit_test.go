package realkernel

import (
	"strings"
	"testing"
)

// TestClassify reads the 7.2 kernel's console as TestCorruptionMatrix
// does: only what it printed between its banner and /init counts (kho-sim
// in it later ends with "Attempted to kill init").
func TestClassify(t *testing.T) {
	stock := []string{
		"[    0.000000] Linux version 6.1.0-57-cloud-amd64",
		"kho-sim: real KHO kernel loaded: entry 0x3000",
		"ok 1 boot-1 cold boot, scenario default",
	}
	kho := func(lines ...string) []string {
		return append(append(append([]string{}, stock...), "[    0.000000] Linux version 7.2.13 (root@vm)"), lines...)
	}
	after := []string{"[    1.28] " + runInit, "[    2.45] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000000"}
	for _, tt := range []struct {
		name     string
		lines    []string
		timedOut bool
		want     verdict
		wantErr  string
	}{
		{"accepts", kho(append([]string{"[    0.00] " + khoFound, "[    0.22] " + luoRetrieved + "1"}, after...)...), false,
			verdict{class: accepts, number: "1"}, ""},
		{"another number", kho(append([]string{"[    0.00] " + khoFound, "[    0.22] " + luoRetrieved + "6"}, after...)...), false,
			verdict{class: accepts, number: "6"}, ""},
		{"refused", kho(append([]string{"[    0.00] KHO: setup: handover FDT (0x10001000) is invalid: -9", "[    0.00] KHO: " + khoDisabled}, after...)...), false,
			verdict{class: noHandover, detail: "KHO: setup: handover FDT (0x10001000) is invalid: -9"}, ""},
		{"panic", kho("[    0.00] "+khoFound, "[    0.22] luo: LUO state is incompatible with 'luo-v5'",
			"[    0.23] Kernel panic - not syncing: The incoming tree failed to initialize properly [-EINVAL], disabling live update"), false,
			verdict{class: panics, detail: "The incoming tree failed to initialize properly [-EINVAL], disabling live update; luo: LUO state is incompatible with 'luo-v5'"}, ""},
		{"warning", kho(append([]string{"[    0.00] " + khoFound, "[    0.10] WARNING: CPU: 0 PID: 0 at kernel/liveupdate/kexec_handover.c:412 kho_restore_page+0x5/0x10",
			"[    0.22] " + luoRetrieved + "1"}, after...)...), false,
			verdict{class: warns, number: "1", detail: "WARN at kernel/liveupdate/kexec_handover.c:412"}, ""},
		{"no LUO line", kho(append([]string{"[    0.00] " + khoFound}, after...)...), false, verdict{class: noLUO}, ""},
		{"watchdog", kho("[    0.00] "+khoFound, "[    0.10] stuck here"), true, verdict{class: hangs, detail: "last line: [    0.10] stuck here"}, ""},
		{"reset before a line", stock, false, verdict{class: resets, detail: "no line of the 7.2 kernel after the kexec"}, ""},
		{"no kexec", stock[:1], false, verdict{}, "did not kexec"},
	} {
		got, err := classify(tt.lines, tt.timedOut)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: error %v, want %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: %#v, %v; want %#v", tt.name, got, err, tt.want)
		}
	}
}

// TestPredict reads kho-sim sim's KTAP: boot 2's first finding and what
// it says the 7.2 kernel does.
func TestPredict(t *testing.T) {
	ktap := func(boot2 ...string) string {
		return strings.Join(append([]string{
			"KTAP version 1", "1..2", "    KTAP version 1", "    # Subtest: boot-1 cold boot, scenario default",
			"    # damaged: root-magic: KHO root FDT magic at 0x10001000+4: 0xd00dfeed -> 0xd00dfeec",
			"ok 1 boot-1 cold boot, scenario default", "    KTAP version 1", "    # Subtest: boot-2 hop 1, scenario default",
		}, boot2...), "\n")
	}
	for _, tt := range []struct {
		name string
		ktap string
		want verdict
	}{
		{"revival", ktap("    not ok 1 KHO root FDT and preserved-memory map are valid", "    # kho: bad magic (the kernel disables KHO revival)"),
			verdict{class: noHandover, detail: "kho: bad magic (the kernel disables KHO revival)"}},
		{"panic", ktap("    ok 1 x", "    not ok 3 LUO blob", `    # LUO blob compatible "luo-v9", want "luo-v5"; the 7.2 kernel panics at boot (liveupdate_early_init)`),
			verdict{class: panics, detail: `LUO blob compatible "luo-v9", want "luo-v5"; the 7.2 kernel panics at boot (liveupdate_early_init)`}},
		{"number", ktap("    not ok 3 LUO blob", "    # liveupdate-number 6, want 1 (one more per hop, 1 after a cold boot)"),
			verdict{class: accepts, number: "6", detail: "liveupdate-number 6, want 1 (one more per hop, 1 after a cold boot)"}},
		{"misused later", ktap("    not ok 3 LUO blob", "    # FLB header pgcnt 0, want 1; the 7.2 kernel reads past the FLB page"),
			verdict{class: accepts, number: "1", detail: "FLB header pgcnt 0, want 1; the 7.2 kernel reads past the FLB page"}},
		{"no finding", ktap("    ok 1 KHO root FDT", "ok 2 boot-2 hop 1"), verdict{class: accepts, number: "1", detail: "no finding"}},
		{"outside", ktap("    not ok 1 KHO root FDT", "    # radix bitmap 0x1204b000: outside the region (the 7.2 kernel follows it unchecked in kho_mem_retrieve into memory the handover does not hold, and what lies there decides)"),
			verdict{class: undetermined, detail: "radix bitmap 0x1204b000: outside the region (the 7.2 kernel follows it unchecked in kho_mem_retrieve into memory the handover does not hold, and what lies there decides)"}},
	} {
		got := predict(tt.ktap)
		if !got.applies || got.verdict != tt.want || !strings.HasPrefix(got.damaged, "root-magic: ") {
			t.Errorf("%s: %#v, want %#v", tt.name, got, tt.want)
		}
	}
	if p := predict("    not ok 11 image damaged as asked\n    # corrupt luo-magic: kind does not apply to this image"); p.applies {
		t.Errorf("a kind that does not apply: %+v", p)
	}
}

// usableRAM turns the 7.2 kernel's e820 lines into kho-sim sim's --ram
// form; the stock kernel's lines before the 7.x banner do not count.
func TestUsableRAM(t *testing.T) {
	lines := []string{
		"[    0.000000] BIOS-e820: [mem 0x0000000000000000-0x00000000000fffff] usable",
		"[    0.000000] Linux version 7.2.13 (root@host)",
		"[    0.000000] BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff]  System RAM",
		"[    0.000000] BIOS-e820: [mem 0x000000000009fc00-0x000000000009ffff]  device reserved",
		"[    0.000000] BIOS-e820: [gap 0x00000000000a0000-0x00000000000effff]",
		"[    0.000000] BIOS-e820: [mem 0x0000000000100000-0x000000001ffdffff]  System RAM",
		"[    0.000000] BIOS-e820: [mem 0x000000001ffe0000-0x000000001fffffff]  device reserved",
	}
	if got := usableRAM(lines); got != matrixRAM {
		t.Errorf("usableRAM = %q, want %q", got, matrixRAM)
	}
	if got := usableRAM(lines[:1]); got != "" {
		t.Errorf("without a 7.x banner: %q, want \"\"", got)
	}
	if got := usableRAM(lines[:2]); got != "none" {
		t.Errorf("a banner and no range: %q, want \"none\"", got)
	}
}

// The table counts agreement among definite predictions only, marks an
// undetermined one "-" and lists what the kernel did in it.
func TestMatrixTableCounts(t *testing.T) {
	cases := []*matrixCase{
		{kind: "root-magic", pred: prediction{applies: true, verdict: verdict{class: noHandover}}, observed: verdict{class: noHandover}},
		{kind: "bitflip:1", pred: prediction{applies: true, verdict: verdict{class: accepts, number: "1"}}, observed: verdict{class: panics}},
		{kind: "bitflip:27", pred: prediction{applies: true, verdict: verdict{class: undetermined}}, observed: verdict{class: accepts, number: "1"}},
	}
	table, agreed, definite := matrixTable(cases, "7.2.13", 0)
	if agreed != 1 || definite != 2 {
		t.Errorf("agreed %d of %d, want 1 of 2", agreed, definite)
	}
	for _, want := range []string{"agreement: 1 of 2 with a definite prediction; 1 decided outside the handover (observed: bitflip:27 accepts)", "decided outside"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
}

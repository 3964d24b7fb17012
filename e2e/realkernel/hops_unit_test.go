package realkernel

import (
	"errors"
	"strings"
	"testing"
)

// hopConsole is a console of the chain 7.2 -> 7.3 -> 7.2 as guest/luo/selftest
// and the kernels print it, with edits applied per line.
func hopConsole(edit func(string) string) []consoleLine {
	text := `SeaBIOS (version 1.16.2-debian-1.16.2-1)
[    0.000000] Linux version 7.2.13 (root@host) (gcc) #1 SMP
LUO-SELFTEST stage=1: kernel 7.2 (release 7.2.13), next ["7.3" "7.2"]
LUO-SELFTEST stage=1: /luo_kexec_simple-7.2 -s 1 exited 0 after 0.050 s
LUO-SELFTEST stage=1: hop: kexec into 7.3
[    1.900000] kexec_core: Starting new kernel
[    0.000000] Linux version 7.3.4 (root@host) (gcc) #1 SMP
[    0.000000] KHO: found kexec handover data.
[    0.400000] luo: Retrieved live update data, liveupdate number: 1
[    0.700000] KHO: exec from: 7.2.13 (count 1)
--- SIMPLE KEXEC TEST PASSED ---
LUO-SELFTEST stage=2: TEST PASSED
LUO-SELFTEST stage=1: /luo_kexec_simple-7.3 -s 1 exited 0 after 0.040 s
[    1.800000] kexec_core: Starting new kernel
[    0.000000] Linux version 7.2.13 (root@host) (gcc) #1 SMP
[    0.000000] KHO: found kexec handover data.
[    0.400000] luo: Retrieved live update data, liveupdate number: 2
[    0.700000] KHO: exec from: 7.3.4 (count 2)
--- SIMPLE KEXEC TEST PASSED ---
LUO-SELFTEST stage=2: TEST PASSED
reboot: Restarting system`
	var lines []consoleLine
	for _, l := range strings.Split(text, "\n") {
		if edit != nil {
			l = edit(l)
		}
		lines = append(lines, consoleLine{Text: l})
	}
	return lines
}

func TestJudgeHop(t *testing.T) {
	k72 := realKernel{series: "7.2", release: "7.2.13"}
	k73 := realKernel{series: "7.3", release: "7.3.4"}
	replace := func(old, new string) func(string) string {
		return func(l string) string { return strings.Replace(l, old, new, 1) }
	}
	onlyIn := func(banner, old, new string) func(string) string {
		in := false
		return func(l string) string {
			if strings.Contains(l, bannerText) {
				in = strings.Contains(l, banner)
			}
			if in {
				return strings.Replace(l, old, new, 1)
			}
			return l
		}
	}
	tests := []struct {
		name string
		edit func(string) string
		hop  int
		want error
	}{
		{"7.2 -> 7.3 passes", nil, 1, nil},
		{"7.3 -> 7.2 passes", nil, 2, nil},
		{"stage 1 failed on 7.2", replace("/luo_kexec_simple-7.2 -s 1 exited 0", "/luo_kexec_simple-7.2 -s 1: exit status 1"), 1, errHopStage1},
		{"KHO disabled revival", onlyIn("7.3.4", "KHO: found kexec handover data.", "KHO: disabling KHO revival"), 1, errHopKHO},
		{"LUO did not retrieve", replace("number: 1", "number: x"), 1, errHopLUO},
		{"kexec-metadata of another kernel", replace("exec from: 7.2.13 (count 1)", "exec from: 7.3.4 (count 1)"), 1, errHopMeta},
		{"kexec count not carried on", replace("(count 2)", "(count 1)"), 2, errHopMeta},
		{"wrong liveupdate number", replace("number: 2", "number: 1"), 2, errHopLUO},
		{"LUO state incompatible", onlyIn("7.3.4", "luo: Retrieved live update data, liveupdate number: 1", "luo: LUO state is incompatible with 'luo-v5'"), 1, errHopLUO},
		{"selftest's own pass missing", onlyIn("7.3.4", "--- SIMPLE KEXEC TEST PASSED ---", "stage 2 failed"), 1, errHopStage2},
		{"the next kernel is not 7.3", replace("Linux version 7.3.4 ", "Linux version 7.2.13 "), 1, errHopKernel},
		{"a WARN on the receiving kernel", replace("LUO-SELFTEST stage=1: /luo_kexec_simple-7.3 -s 1 exited 0 after 0.040 s", "WARNING: CPU: 0 PID: 1 at kernel/liveupdate/kexec_handover.c:529"), 1, errHopTrouble},
		{"a WARN on the sending kernel", replace("LUO-SELFTEST stage=1: hop: kexec into 7.3", "------------[ cut here ]------------"), 1, errHopTrouble},
		{"a hop past the last boot", nil, 3, errHopBoots},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			boots := splitBoots(hopConsole(tt.edit))
			if len(boots) != 3 {
				t.Fatalf("%d boots, want 3", len(boots))
			}
			from, to := k72, k73
			if tt.hop == 2 {
				from, to = k73, k72
			}
			if err := judgeHop(boots, tt.hop, from, to); !errors.Is(err, tt.want) {
				t.Errorf("judgeHop: %v, want %v", err, tt.want)
			}
		})
	}
}

func TestSplitBoots(t *testing.T) {
	boots := splitBoots(hopConsole(nil))
	var banners []string
	for _, b := range boots {
		banners = append(banners, strings.Fields(b.banner)[2])
	}
	if got := strings.Join(banners, " "); got != "7.2.13 7.3.4 7.2.13" {
		t.Errorf("banners %s", got)
	}
	if boots[0].contains("SeaBIOS") {
		t.Error("the firmware's lines belong to no boot")
	}
	if !boots[2].contains("reboot: Restarting system") {
		t.Error("the last boot lacks its last line")
	}
}

package realkernel

import (
	"strings"
	"testing"
	"time"
)

// TestKexecTimings reads the figures of TestKexecLoad's consoles: the
// guest's reboot line or, for kho-sim (which quiets the console before it
// reboots), the next kernel's banner, to the LUO line.
func TestKexecTimings(t *testing.T) {
	at := func(s float64, text string) consoleLine {
		return consoleLine{At: time.Duration(s * float64(time.Second)), Text: text}
	}
	guest := []consoleLine{
		at(1, "[    0.000000] Linux version 6.1.0-57-cloud-amd64"),
		at(5, "KEXECLOAD-GUEST stage=1: kexec_load took 41.5 ms (LoadKHO 300.0 ms): entry 0x3000"),
		at(6, "KEXECLOAD-GUEST stage=1: rebooting into the KHO kernel at uptime 5.09 s"),
		at(6.5, "[    0.000000] Linux version 7.2.13 (root@vm)"),
		at(8, "[    0.332000] luo: Retrieved live update data, liveupdate number: 1"),
	}
	khoSim := []consoleLine{
		at(1, "[    0.000000] Linux version 6.1.0-57-cloud-amd64"),
		at(5, "    # phase kexec_load (KHO setup_data) 119.7 ms"),
		at(7, "[    0.000000] Linux version 7.2.13 (root@vm)"),
		at(9.5, "[    0.224000] luo: Retrieved live update data, liveupdate number: 1"),
	}
	for _, tt := range []struct {
		name  string
		lines []consoleLine
		want  string
	}{
		{"guest", guest, `kexec_load 41.5 ms; reboot line to "luo: Retrieved": 2.00 s host (kernel timestamp 0.332 s); QEMU start to it 8.00 s`},
		{"kho-sim", khoSim, `kexec_load 119.7 ms; reboot line to "luo: Retrieved": 2.50 s host (kernel timestamp 0.224 s); QEMU start to it 9.50 s`},
		{"no reboot", guest[:2], "no timings"},
		{"no LUO line", guest[:4], "kexec_load 41.5 ms"},
	} {
		if got := kexecTimings(tt.lines); !strings.Contains(got, tt.want) {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

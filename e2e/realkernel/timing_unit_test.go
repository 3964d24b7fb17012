package realkernel

import (
	"errors"
	"testing"
	"time"
)

func TestAnalyze(t *testing.T) {
	sec := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	twoBoots := []consoleLine{
		{sec(0.5), "SeaBIOS"},
		{sec(1.0), "[    0.000000] Linux version 7.2.13 (gcc)"},
		{sec(2.0), "[    0.870102] Run /init as init process"},
		{sec(3.0), "[    1.5] kexec_core: Starting new kernel"},
		{sec(3.5), "[    0.000000] Linux version 7.2.13 (gcc)"},
		{sec(4.5), "\x1b[0m[    0.960000] Run /init as init process"},
		{sec(5.0), "LUO-SELFTEST stage=2: TEST PASSED"},
		{sec(5.5), "reboot: Restarting system"},
	}
	tests := []struct {
		name  string
		lines []consoleLine
		pass  string
		boots int
		want  roundTrip
		err   error
	}{
		{"two boots", twoBoots, "TEST PASSED", 2, roundTrip{Total: sec(5), Boots: []bootTiming{
			{Host: sec(3.5), ToInit: sec(0.870102)}, {Host: sec(1.5), ToInit: sec(0.96)}}}, nil},
		{"no pass line", twoBoots, "# kho-sim: done", 2, roundTrip{}, errNoPassLine},
		{"pass line before the second boot", twoBoots, "Starting new kernel", 2, roundTrip{}, errBoots},
		{"one boot wanted", twoBoots, "TEST PASSED", 1, roundTrip{}, errBoots},
		{"empty console", nil, "TEST PASSED", 2, roundTrip{}, errNoPassLine},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := analyze(tt.lines, tt.pass, tt.boots)
			if !errors.Is(err, tt.err) {
				t.Fatalf("error %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if got.Total != tt.want.Total || len(got.Boots) != len(tt.want.Boots) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			for i := range got.Boots {
				if d := got.Boots[i].ToInit - tt.want.Boots[i].ToInit; got.Boots[i].Host != tt.want.Boots[i].Host || d > time.Microsecond || d < -time.Microsecond {
					t.Errorf("boot %d: got %+v, want %+v", i+1, got.Boots[i], tt.want.Boots[i])
				}
			}
		})
	}
}

func TestUnexpectedDifferences(t *testing.T) {
	const luoAndScratch = "pages: 19\ndiffers: 0x3ae000 (subtree \"LUO\", LUO blob (freed by the next kernel's luo_early_startup))\n" +
		"differs: 0x3e7f0000 (scratch array: a kexec segment, copied into place after the image was taken)\nidentical: 9, different: 2\n"
	tests := []struct {
		name     string
		report   string
		luoFreed bool
		want     int
	}{
		{"LUO blob and scratch array, LUO on", luoAndScratch, true, 0},
		{"LUO blob and scratch array, LUO off", luoAndScratch, false, 1},
		{"FLB page", "differs: 0x3af000 (FLB page)\ndiffers: 0x3ae000 (subtree \"LUO\", LUO blob (freed))\n", true, 1},
		{"not printed is no difference", "not printed by the guest: 0x3af000 (FLB page)\n", false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := unexpectedDifferences(tt.report, tt.luoFreed); len(got) != tt.want {
				t.Errorf("got %q, want %d lines", got, tt.want)
			}
		})
	}
}

package main

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/ktap"
)

// TestSimABIRoundTrips: every generation passes a three-boot run.
func TestSimABIRoundTrips(t *testing.T) {
	for _, abi := range []string{"7.0", "luo-v2", "7.2"} {
		t.Run(abi, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "mem")
			code, out, errs := run("sim", "--image", img, "--hops", "2", "--abi", abi)
			if code != 0 {
				t.Fatalf("exit %d\n%s%s", code, out, errs)
			}
			rep, err := ktap.Parse(strings.NewReader(out))
			if err != nil || !rep.Passed() || len(rep.Results) != 3 {
				t.Fatalf("KTAP: %v\n%s", err, out)
			}
		})
	}
}

// TestSimABIMismatch: a 7.2 handover read by a 7.0 kernel fails boot 2
// with the kernel's action, and the remaining boot is skipped.
func TestSimABIMismatch(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--abi", "7.2", "--read-abi", "7.0"}, `Linux 7.0 rejects the KHO root "kho-v4"`},
		{[]string{"--abi", "7.0,7.2"}, `Linux 7.2 rejects the KHO root "kho-v1"`},
		{[]string{"--abi", "luo-v2", "--read-abi", "7.0"}, `Linux 7.0 finds the LUO FDT "luo-v2"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "mem")
			code, out, errs := run(append([]string{"sim", "--image", img}, tt.args...)...)
			if code != 1 || !strings.Contains(out, tt.want) || !strings.Contains(out, "ok 3 boot-3 # SKIP") {
				t.Fatalf("exit %d, want 1 and %q\n%s%s", code, tt.want, out, errs)
			}
			if probs := ktap.Validate(strings.NewReader(out)); len(probs) != 0 {
				t.Fatalf("invalid KTAP: %v", probs)
			}
		})
	}
}

func TestSimABIBadInput(t *testing.T) {
	img := filepath.Join(t.TempDir(), "mem")
	for _, args := range [][]string{{"--abi", "7.1"}, {"--abi", "7.0,"}, {"--read-abi", "kho-v4"}} {
		code, _, errs := run(append([]string{"sim", "--image", img}, args...)...)
		if code != 2 || !strings.Contains(errs, "want one of 7.0, luo-v2, 7.2") {
			t.Errorf("%v: exit %d, stderr %q", args, code, errs)
		}
	}
}

func TestChooseABI(t *testing.T) {
	tests := []struct {
		flag, param string
		boot        int
		want        kernel.Generation
		bad         bool
	}{
		{"", "", 1, kernel.V70, false},
		{"", "7.2", 3, kernel.V72, false},
		{"", "7.0,7.2", 1, kernel.V70, false},
		{"", "7.0,7.2", 2, kernel.V72, false},
		{"", "7.0,7.2", 3, kernel.V70, false},
		{"luo-v2", "7.2", 2, kernel.LUOv2, false},
		{"", "7.5", 1, "", true},
	}
	for _, tt := range tests {
		got, err := chooseABI(tt.flag, tt.param, tt.boot)
		if tt.bad {
			if !errors.As(err, new(usageError)) || !strings.Contains(err.Error(), paramABI) {
				t.Errorf("chooseABI(%q, %q): %v, want a usage error naming %s", tt.flag, tt.param, err, paramABI)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("chooseABI(%q, %q, %d) = %q, %v; want %q", tt.flag, tt.param, tt.boot, got, err, tt.want)
		}
	}
	f := runFlags{hops: -1}
	c, err := f.resolve(map[string]string{paramABI: "7.0,7.2", paramBoot: "2", paramHops: "3", paramRegion: "16M@0x10000000"}, "")
	if err != nil || c.ABI != kernel.V72 {
		t.Fatalf("resolve: ABI %q, %v; want 7.2 for boot 2", c.ABI, err)
	}
}

// sim --ram: a radix pointer out of the region lands in RAM (its content
// decides) or beyond it (the kernel faults); without --ram kho-sim cannot
// tell, and says what lies there decides. Bad ranges are usage errors.
func TestSimRAM(t *testing.T) {
	const beyond = "beyond the next kernel's RAM"
	const outside = "the handover does not hold"
	for _, tt := range []struct {
		name string
		ram  []string
		want string
	}{
		{"no RAM map", nil, outside},
		{"RAM up to 512 MiB", []string{"--ram", "0x9fc00@0x0,0x1fee0000@0x100000"}, beyond},
		{"RAM up to 4 GiB", []string{"--ram", "4G@0"}, outside},
	} {
		img := filepath.Join(t.TempDir(), "mem")
		// bitflip:3 moves a radix table pointer to 0x50045000.
		args := append([]string{"sim", "--image", img, "--abi", "7.2", "--hops", "1", "--corrupt", "bitflip:3"}, tt.ram...)
		code, out, errs := run(args...)
		if code != 1 || !strings.Contains(out, "radix level 2 table 0x50045000") || !strings.Contains(out, tt.want) {
			t.Errorf("%s: exit %d, want 1 and %q:\n%s%s", tt.name, code, tt.want, out, errs)
		}
	}
	img := filepath.Join(t.TempDir(), "mem")
	for _, bad := range []string{"512M", "0x1000@0x1000,", "zero@0"} {
		code, _, errs := run("sim", "--image", img, "--ram", bad)
		if code != 2 || !strings.Contains(errs, "--ram") {
			t.Errorf("--ram %q: exit %d, stderr %q", bad, code, errs)
		}
	}
}

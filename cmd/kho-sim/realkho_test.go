package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/kho-sim/kho-sim/internal/sim"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// TestRealKHOCmdline: the KHO kernel gets kho=on liveupdate=on, the boot
// number, the region by kho_sim.region=, kho_sim.consumer=1 (kho-sim
// retrieves its files there through /dev/liveupdate), and no memmap= (its preserved
// pages must be RAM to it) or kho_sim.fdt= (the handover travels in
// setup_data).
func TestRealKHOCmdline(t *testing.T) {
	got, err := realKHOCmdline(`console=ttyS0 memmap=16M$0x10000000 kho_sim.fdt=0x10000000 kho_sim.boot=1 kho_sim.real_kho=1`,
		sim.Handover{RootPA: 0x10002000, Boot: 2}, physmem.Range{Start: 0x10000000, Size: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	want := "console=ttyS0 kho_sim.boot=2 kho_sim.real_kho=1 kho=on kho_sim.consumer=1 kho_sim.region=0x1000000@0x10000000 liveupdate=on"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if _, err := physmem.ParseRegion("0x1000000@0x10000000"); err != nil {
		t.Errorf("the next boot cannot read its kho_sim.region: %v", err)
	}
}

func TestRealKHOFlags(t *testing.T) {
	var r realKHOFlags
	if r.enabled("console=ttyS0") || !r.enabled("kho_sim.real_kho=1") {
		t.Error("kho_sim.real_kho=1 decides without the flag")
	}
	if s, err := r.scratchAreas("console=ttyS0"); s != nil || err != nil {
		t.Errorf("no scratch given: %v, %v; want the default (nil)", s, err)
	}
	s, err := r.scratchAreas("kho_sim.scratch=64M@0x4000000,32M@0x20000000")
	if err != nil || len(s) != 2 || s[0] != (physmem.Range{Start: 0x4000000, Size: 64 << 20}) || s[1] != (physmem.Range{Start: 0x20000000, Size: 32 << 20}) {
		t.Errorf("scratch %v, %v", s, err)
	}
	r.scratch = "64M"
	_, err = r.scratchAreas("kho_sim.scratch=64M@0x4000000")
	var ue usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--kho-scratch") {
		t.Errorf("a bad --kho-scratch: %v, want a usage error naming the flag", err)
	}
}

// TestRealKHOCheck: the mode's checks run only when this boot will load a
// real KHO kernel, and then refuse a next kernel that is not there before
// anything is written.
func TestRealKHOCheck(t *testing.T) {
	r := realKHOFlags{region: physmem.Range{Start: 0x10000000, Size: 16 << 20}}
	missing := t.TempDir() + "/no-kernel"
	if err := r.check(true, missing, "console=ttyS0"); err != nil {
		t.Errorf("mode off: %v", err)
	}
	if err := r.check(false, missing, "kho_sim.real_kho=1"); err != nil {
		t.Errorf("last boot: %v", err)
	}
	err := r.check(true, missing, "kho_sim.real_kho=1")
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("a missing next kernel: %v, want an error naming it", err)
	}
}

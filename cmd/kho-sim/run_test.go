package main

import (
	"testing"

	"github.com/kho-sim/kho-sim/pkg/kexec"
)

// TestCmdlineParams_ReadsBackWhatKexecWrites: the next boot reads its
// parameters from the line pkg/kexec wrote, and a value with white space is
// written quoted (kho_sim.scenario="my scenario"); the kernel reads it whole
// (lib/cmdline.c next_arg), so must run.
func TestCmdlineParams_ReadsBackWhatKexecWrites(t *testing.T) {
	set := map[string]string{paramScenario: "/scenarios/my scenario", paramBoot: "2", paramFDT: "0x10000000"}
	line, err := kexec.RewriteCmdline(`console=ttyS0 memmap=16M$0x10000000 dyndbg="file foo.c +p" -- init-arg`, set, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := cmdlineParams(line)
	for k, want := range set {
		if got := p[k]; got != want {
			t.Errorf("%s: read back %q from %q, want %q", k, got, line, want)
		}
	}
	if got := p["dyndbg"]; got != "file foo.c +p" {
		t.Errorf("dyndbg = %q, want the quoted value whole", got)
	}
}

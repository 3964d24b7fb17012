package main

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
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

// TestThen: kho_sim.then= names the consumer boot's successor as one argv
// (quoted whole on the command line, as the real-kernel loop passes it),
// survives the rewrite to the KHO kernel's command line, and a program that
// is not there is an error, not a silent power-off.
func TestThen(t *testing.T) {
	line := `console=ttyS0 memmap=16M$0x10000000 kho_sim.then="/luo boot -kernel /kernels/next" kho_sim.region=16M@0x10000000`
	next, err := kexec.RewriteCmdline(line, map[string]string{"kho": "on", paramConsumer: "1"}, []string{"memmap"})
	if err != nil {
		t.Fatal(err)
	}
	var f runFlags
	f.hops = -1
	c, err := f.resolve(cmdlineParams(next), next)
	if err != nil {
		t.Fatal(err)
	}
	if c.then != "/luo boot -kernel /kernels/next" {
		t.Fatalf("then = %q from %q", c.then, next)
	}
	if err := handOver([]string{"/nonexistent/kho-sim-successor", "boot"}); err == nil {
		t.Fatal("handOver of a missing program succeeded")
	}
}

// A kernel without KHO and LUO boots without the handover: the consumer
// boot after it finds no /dev/liveupdate and must fail, saying so.
func TestConsumerWithoutLiveupdate(t *testing.T) {
	line := "kho_sim.consumer=1 kho_sim.boot=2 kho_sim.hops=1 kho_sim.scenario=real-consumer kho_sim.abi=7.2 kho_sim.region=16M@0x10000000"
	f := runFlags{hops: -1, stay: true, liveupdate: filepath.Join(t.TempDir(), "liveupdate")}
	cfg, err := f.resolve(cmdlineParams(line), line)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := runConsumer(f, cfg, &out); !errors.Is(err, errFailed) {
		t.Fatalf("runConsumer = %v, want errFailed", err)
	}
	if !strings.Contains(out.String(), "FAILED: open "+f.liveupdate+": no such file or directory: this kernel did not take kho-sim's handover") {
		t.Errorf("output does not say the handover was not taken:\n%s", out.String())
	}
}

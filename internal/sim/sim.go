package sim

import (
	"encoding/binary"
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"io"

	"github.com/kho-sim/kho-sim/internal/check"
	"github.com/kho-sim/kho-sim/internal/scenario"
	"github.com/kho-sim/kho-sim/internal/timing"
	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// Handover is what crosses from one boot to the next besides memory: the
// KHO root FDT's address (0: no handover, a cold boot) and the number of the
// boot that receives it.
type Handover struct {
	RootPA uint64
	Boot   int
}

// Config describes one boot.
type Config struct {
	Region *physmem.Region
	// Scenario is the scenario this boot runs.
	Scenario *scenario.Scenario
	// In is the handover from the previous boot; In.Boot is this boot's
	// number (1 for the first).
	In Handover
	// Boots is the number of boots in the run (hops + 1).
	Boots int
	// Fix runs the model with the finish-before-retrieve flaw fixed.
	Fix bool
	// Out receives KTAP.
	Out io.Writer
	// Load, when set, loads the next kernel once the image is written (run
	// mode) and returns the phases it measured. Its error sends the boot
	// down the abort path.
	Load func(next Handover) ([]timing.Phase, error)
	// Damage, when set, is applied to the image once it is written and
	// before the next kernel is loaded, and returns what it changed: the
	// corrupted-handover tests.
	Damage func(r *physmem.Region, rootPA uint64) (string, error)
	// DryRun runs the abort path after a successful Load instead of
	// handing over: the whole outgoing side is proven without a reboot.
	DryRun bool
	// Timings measured before Run was called (boot to start, ...), printed
	// with the boot's own.
	Phases []timing.Phase
	// TSCHz is the time-stamp counter's frequency, handed to the next boot
	// to measure the blackout; 0 where no reboot happens.
	TSCHz uint64
	// ABI is this boot's kernel generation: the handover it writes and, unless
	// ReadABI says otherwise, the one it expects to read. "" is 7.0.
	ABI kernel.Generation
	// ReadABI, when set, is the generation the incoming side expects, to
	// simulate a hop between kernels of different generations.
	ReadABI kernel.Generation
	// KeepHandover makes the run's last boot hand over as if it kexec'd
	// into a boot that never runs, so the image ends holding a complete
	// handover for other tools to read.
	KeepHandover bool
	// RAM, when set, is the RAM of this boot's kernel (the ranges its
	// phys_to_virt reaches) besides the region: a pointer of the incoming
	// handover out of the region then lands in RAM, where what lies there
	// decides, or beyond it, where the kernel faults. Unset, kho-sim cannot
	// tell the two apart and says that memory outside the handover decides.
	RAM kho.NextRAM
}

// Outcome is how a boot ended.
type Outcome struct {
	// Next is the handover for the next boot; Next.RootPA is 0 for a cold
	// reboot or when the run is over.
	Next Handover
	// Last is true when no boot follows.
	Last bool
	// OK is the boot's verdict.
	OK bool
	// Events are the FLB callbacks of this boot, in order, and Violations
	// the promises they broke (known flaws included).
	Events     []check.Event
	Violations []check.Violation
	// rebootTSC points at the metadata's tsc-reboot value in the region.
	rebootTSC []byte
}

// StampReboot writes the time-stamp counter into the handover right before
// the reboot call, so the next boot can measure the blackout.
func (o *Outcome) StampReboot() {
	if o.rebootTSC != nil {
		binary.LittleEndian.PutUint64(o.rebootTSC, timing.TSC())
	}
}

// tscPlaceholder is written as tsc-reboot and found again in the encoded
// blob, so the value can be patched in place at reboot.
const tscPlaceholder = 0x6b686f2d73696d21

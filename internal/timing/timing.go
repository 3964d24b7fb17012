package timing

import (
	"fmt"
	"math"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// TSC reads the time-stamp counter (0 where there is none).
func TSC() uint64 { return rdtsc() }

// CalibrateTSC estimates the TSC frequency in Hz against CLOCK_MONOTONIC
// over about d of busy waiting: the median of three windows of d/3, so one
// window a clock step or a stalled vCPU disturbed does not decide it. (With
// one window, one hop of 58 in a QEMU bench reported a 539 s blackout where
// the others took 5-12 s.) It returns 0 where there is no TSC.
func CalibrateTSC(d time.Duration) uint64 {
	if !HasTSC {
		return 0
	}
	var hz [3]uint64
	for i := range hz {
		t0, c0 := time.Now(), TSC()
		for time.Since(t0) < d/3 {
		}
		el, c1 := time.Since(t0), TSC()
		if el <= 0 || c1 <= c0 {
			return 0
		}
		hz[i] = uint64(float64(c1-c0) / el.Seconds())
	}
	slices.Sort(hz[:])
	return hz[1]
}

// rateTolerance is how far two calibrations of one TSC may differ: the
// windows are short, but a TSC's frequency does not change across a kexec.
const rateTolerance = 0.01

// TSCDuration converts a TSC delta to a duration. hzThen is the frequency
// the boot that read from calibrated, hzNow the one the boot that reads to
// calibrated; ok is false when the delta cannot be trusted: no frequency,
// the counter went backwards (as after a cold reset), or the two
// calibrations disagree by more than 1%, so one of them is wrong.
func TSCDuration(from, to, hzThen, hzNow uint64) (time.Duration, bool) {
	if hzThen == 0 || hzNow == 0 || from == 0 || to < from {
		return 0, false
	}
	if diff := math.Abs(float64(hzThen) - float64(hzNow)); diff > rateTolerance*float64(hzNow) {
		return 0, false
	}
	return time.Duration(float64(to-from) / float64(hzNow) * float64(time.Second)), true
}

// SinceBoot is CLOCK_BOOTTIME: the time since this kernel started.
func SinceBoot() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// Phase is one measured phase.
type Phase struct {
	Name string
	D    time.Duration
}

// Phases records phase durations in the order measured.
type Phases struct {
	list []Phase
}

// Add records a phase.
func (p *Phases) Add(name string, d time.Duration) { p.list = append(p.list, Phase{name, d}) }

// Accumulate adds d to the phase called name, recording it at the end
// when it is new, so repeated work sums up under one name.
func (p *Phases) Accumulate(name string, d time.Duration) {
	for i := range p.list {
		if p.list[i].Name == name {
			p.list[i].D += d
			return
		}
	}
	p.Add(name, d)
}

// Time runs fn and records how long it took.
func (p *Phases) Time(name string, fn func() error) error {
	t := time.Now()
	err := fn()
	p.Add(name, time.Since(t))
	return err
}

// List returns the phases in order.
func (p *Phases) List() []Phase { return p.list }

// Ms formats a duration in milliseconds with one decimal.
func Ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

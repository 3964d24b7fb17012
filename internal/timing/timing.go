package timing

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// TSC reads the time-stamp counter (0 where there is none).
func TSC() uint64 { return rdtsc() }

// CalibrateTSC estimates the TSC frequency in Hz against CLOCK_MONOTONIC
// over about d of busy waiting. It returns 0 where there is no TSC.
func CalibrateTSC(d time.Duration) uint64 {
	if !HasTSC {
		return 0
	}
	t0, c0 := time.Now(), TSC()
	for time.Since(t0) < d {
	}
	el, c1 := time.Since(t0), TSC()
	if el <= 0 || c1 <= c0 {
		return 0
	}
	return uint64(float64(c1-c0) / el.Seconds())
}

// TSCDuration converts a TSC delta at hz to a duration; ok is false when the
// delta cannot be trusted (no frequency, or the counter went backwards, as it
// does after a cold reset).
func TSCDuration(from, to, hz uint64) (time.Duration, bool) {
	if hz == 0 || from == 0 || to < from {
		return 0, false
	}
	return time.Duration(float64(to-from) / float64(hz) * float64(time.Second)), true
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

// Package timing measures the phases of a handover, including the blackout
// from one kernel's reboot call to the next kernel's first check. Clocks that
// the kernel keeps (CLOCK_MONOTONIC, CLOCK_BOOTTIME) restart at every boot and
// the wall clock is re-read from the RTC at one-second resolution, so the
// blackout is measured with the CPU's time-stamp counter, which a kexec does
// not reset.
package timing

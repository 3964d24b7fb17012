//go:build !amd64

package timing

func rdtsc() uint64 { return 0 }

// HasTSC reports whether TSC reads the time-stamp counter on this platform.
const HasTSC = false

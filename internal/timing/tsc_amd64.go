package timing

func rdtsc() uint64

// HasTSC reports whether TSC reads the time-stamp counter on this platform.
const HasTSC = true

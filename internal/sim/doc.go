// Package sim runs one simulated boot of a kho-sim scenario: it reads and
// checks the handover the previous boot left in a physical memory region,
// replays retrieve and finish on a fresh model of the kernel, runs the
// boot's steps, and writes the next handover image into the same region.
//
// Nothing crosses from one boot to the next except the region's bytes and
// the handover parameters (the KHO root FDT's address and the boot number),
// exactly as nothing but memory and the command line crosses a kexec. The
// same code runs in-process (kho-sim sim, with a file standing in for
// memory) and on real memory at boot (kho-sim run).
package sim

// Package realkernel runs kho-sim next to a real Linux 7.2 kernel with KHO
// and LUO (scripts/luo-kernel) and the kernel's own LUO selftest, in QEMU,
// in one test: TestRealKernel.
//
// It is opt-in because it builds a kernel (minutes, cached afterwards) and
// runs QEMU five times, two boots each: set KHO_SIM_LUO_KERNEL=1 to run it
// (a missing tool skips) or KHO_SIM_LUO_KERNEL=required (a missing tool
// fails). About 70 s with the kernel cached; give go test -timeout 30m.
//
// The real handover is read from a RAM image QEMU saves at the moment the
// old kernel starts the new one, not from /dev/mem inside the guest: before
// reboot(KEXEC) the kernel has not serialized LUO yet (the outgoing blob
// has sessions_pa 0), and after the kexec the new kernel has freed the LUO
// blob in an early initcall and reused the radix tree's pages before any
// user program runs. What the guest does read through /dev/mem after the
// kexec (guest/luo stage 2) is checked against the image: only the freed
// LUO blob may differ.
package realkernel

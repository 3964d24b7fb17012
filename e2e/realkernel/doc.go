// Package realkernel runs kho-sim next to real Linux 7.2 and 7.3 kernels
// with KHO and LUO (scripts/luo-kernel) and the kernels' own LUO selftest,
// in QEMU: TestRealKernel. TestKexecLoad hands a handover to the 7.2
// kernel from a stock kernel with kexec_load, TestRealConsumer has it
// restore kho-sim's memfds and FLBs, and TestCorruptionMatrix boots it on
// every damaged handover internal/corrupt makes and sets its outcome beside
// kho-sim's prediction.
//
// It is opt-in because it builds two kernels (minutes each, cached
// afterwards) and boots QEMU thirteen times: six lanes of two boots on
// each kernel, the two kernels side by side, and one chain of three boots
// hopping 7.2 -> 7.3 -> 7.2 (hops_test.go). Set KHO_SIM_LUO_KERNEL=1 to
// run it (a missing tool skips) or KHO_SIM_LUO_KERNEL=required (a missing
// tool fails); scripts/test.sh runs it, .ci/run with required. Give go
// test -timeout 30m. Every boot's serial log is kept under
// out/realkernel/.
//
// The real handover is read twice. In the first capture the second kernel
// retrieves and finishes the sessions, as a live update does; it frees the
// LUO blob in an early initcall and reuses the radix tree's pages before
// any user program runs, so the handover is taken from a RAM image QEMU
// saves at the moment the old kernel starts the new one. In the second the
// guest reads it through /dev/mem on both sides: the radix tree before
// reboot(KEXEC) (its nodes do not change once the kexec image is loaded),
// the rest after the kexec in a kernel booted with kho=off liveupdate=off,
// which still reserves every preserved page but never consumes the LUO
// blob. Every page it read must equal the RAM image.
package realkernel

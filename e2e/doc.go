// Package e2e boots kho-sim's initramfs in QEMU and checks the KTAP report
// of a whole chain of kexec hops: every boot must report a passing subtest.
//
// Judge turns a parsed report into per-boot verdicts; the ktapverdict command
// applies it to a serial log (scripts/qemu/run.sh uses it), and
// TestQEMUHandover runs the chain itself. The test needs qemu-system-x86_64
// and a Debian kernel (KHO_SIM_KERNEL, or scripts/fetch-kernel.sh's cache);
// without them it skips, unless KHO_SIM_E2E=required.
package e2e

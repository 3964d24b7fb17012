// Package e2e boots kho-sim's initramfs in QEMU and checks the KTAP report
// of whole chains of kexec hops.
//
// Judge turns a parsed report into per-boot verdicts, every boot passing;
// JudgeExpect lets a run expect boots that fail for a given reason, are
// skipped, or pass with an expected failure (XFAIL). The ktapverdict command
// applies Judge to a serial log (scripts/qemu/run.sh uses it), and
// TestQEMUHandover runs the QEMU matrix: scenarios, corrupted handovers, a
// long chain and hops between Debian 6.1 and Linux 7.x, VMs side by side.
// The test needs qemu-system-x86_64 and the kernels (KHO_SIM_KERNEL and
// KHO_SIM_KERNEL_ALT, or scripts/fetch-kernel.sh's cache); without them it
// skips, unless KHO_SIM_E2E=required.
package e2e

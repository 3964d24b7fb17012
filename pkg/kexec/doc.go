// Package kexec boots the next kernel: it loads a kernel image with
// kexec_file_load(2), reboots into it, builds the next kernel command line,
// and repacks the running root filesystem into a newc cpio held in a memfd,
// so the same initramfs runs again after every hop. Two Loaders do the load
// and the reboot: FileLoader makes the system calls from this process,
// KexecTools runs kexec-tools' kexec -s -l and kexec -e, the baseline.
//
// Failures are explained before and after the fact. ReadPreflight and
// CheckKernelImage report what would make kexec_file_load fail (sysctls,
// lockdown, capabilities, the bzImage setup header checked as
// arch/x86/kernel/kexec-bzimage64.c:bzImage64_probe does), and a failed
// FileLoad returns a *LoadError that names every syscall argument and says
// what the errno means for kexec_file_load; it unwraps to the unix.Errno.
//
// References: Documentation/arch/x86/boot.rst (setup header),
// Documentation/driver-api/early-userspace/buffer-format.rst (newc cpio),
// kernel/kexec_file.c and kernel/kexec_core.c (errnos).
//
// LoadKHO is the other loader: kexec_load(2) of an x86-64 bzImage for a
// kernel with Kexec HandOver (Linux 7.2 and later), which finds the
// handover in a SETUP_KEXEC_KHO setup_data entry that a stock kernel's
// kexec_file_load never adds. It builds that entry, the scratch array and
// every segment from u-root's pieces (pkg/boot/kexec, bzimage, purgatory),
// and checks the scratch areas first (ScratchProblem, DefaultScratch);
// KHOLoadPreflight says what stops it on a machine.
//
// The package knows nothing of what is handed over across the kexec beyond
// the boot protocol's pointers to it. Loading
// and rebooting are Linux only; on other systems they return
// errors.ErrUnsupported. FileLoad needs an architecture with kexec_file_load
// (amd64, arm64, riscv64, s390x, ppc64, loong64, arm); elsewhere it fails
// with ENOSYS.
package kexec

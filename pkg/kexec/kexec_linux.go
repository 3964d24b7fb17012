package kexec

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// LoadError is a failed kexec_file_load: every argument that went in, the
// errno, and what that errno means here. errors.Is(err, unix.EPERM) and the
// like see the errno.
type LoadError struct {
	Kernel   string // path of the kernel image, "" for an unload
	KernelFd int
	InitrdFd int // -1 when none
	Cmdline  string
	Flags    int
	Errno    unix.Errno
	// Detail is what this machine adds to the errno's meaning (preflight
	// problems, the image check, the command line limit); may be empty.
	Detail string
}

func (e *LoadError) Error() string {
	kernel := e.Kernel
	if kernel == "" {
		kernel = "<none>"
	}
	s := fmt.Sprintf("SYS_kexec_file_load(kernel=%s fd=%d, initrd fd=%d, cmdline=%q, flags=%#x) = %s (%v): %s",
		kernel, e.KernelFd, e.InitrdFd, e.Cmdline, e.Flags, unix.ErrnoName(e.Errno), e.Errno, explainErrno(e.Errno))
	if e.Detail != "" {
		s += "; here: " + e.Detail
	}
	return s
}

func (e *LoadError) Unwrap() error { return e.Errno }

// FileLoad loads opts.Kernel, opts.Initrd and opts.Cmdline as the kernel to
// boot on the next Reboot, replacing any image already loaded. A syscall
// failure is a *LoadError.
func FileLoad(opts LoadOptions) error {
	kernel, err := os.Open(opts.Kernel)
	if err != nil {
		return fmt.Errorf("kexec: kernel image: %w", err)
	}
	defer kernel.Close()
	initrdFd, flags := -1, unix.KEXEC_FILE_NO_INITRAMFS
	if opts.Initrd != nil {
		initrdFd, flags = int(opts.Initrd.Fd()), 0
	}
	defer runtime.KeepAlive(opts.Initrd)
	return fileLoad(opts, int(kernel.Fd()), initrdFd, flags)
}

// Unload drops the loaded kexec image, if any (KEXEC_FILE_UNLOAD).
func Unload() error {
	return fileLoad(LoadOptions{}, -1, -1, unix.KEXEC_FILE_UNLOAD)
}

func fileLoad(opts LoadOptions, kernelFd, initrdFd, flags int) error {
	errno, failed := kexecFileLoad(kernelFd, initrdFd, opts.Cmdline, flags).(unix.Errno) // x/sys fails with Errno values only
	if !failed {
		return nil
	}
	return &LoadError{Kernel: opts.Kernel, KernelFd: kernelFd, InitrdFd: initrdFd, Cmdline: opts.Cmdline, Flags: flags,
		Errno: errno, Detail: loadDetail(errno, opts, "/")}
}

// Reboot syncs file systems and jumps into the loaded kexec image. It only
// returns on failure.
func Reboot() error {
	unix.Sync()
	err := unix.Reboot(unix.LINUX_REBOOT_CMD_KEXEC)
	why := ""
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EINVAL):
		why = ": no kexec image is loaded (/sys/kernel/kexec_loaded is 0: FileLoad first), or this process is in a non-initial PID namespace"
	case errors.Is(err, unix.EPERM):
		why = ": CAP_SYS_BOOT is missing in the initial user namespace"
	}
	return fmt.Errorf("reboot(LINUX_REBOOT_CMD_KEXEC) = %w%s", err, why)
}

// explainErrno says what an errno from kexec_file_load means, naming the
// kernel check that returns it (kernel/kexec_file.c, kernel/kexec_core.c,
// arch/x86/kernel/kexec-bzimage64.c, crypto/asymmetric_keys/verify_pefile.c).
func explainErrno(errno unix.Errno) string {
	switch errno {
	case unix.EPERM:
		return "refused before the image is read: CAP_SYS_BOOT missing, kernel.kexec_load_disabled=1, kernel.kexec_load_limit_reboot used up, " +
			"or kernel lockdown (integrity/confidentiality) with an image whose signature does not verify"
	case unix.EKEYREJECTED:
		return "the kernel requires signed images (CONFIG_KEXEC_SIG_FORCE or secure boot policy) and the image's PE signature was rejected: sign it with a key the kernel trusts or use the distribution's signed kernel"
	case unix.ENOKEY:
		return "the kernel requires signed images (CONFIG_KEXEC_SIG_FORCE or secure boot policy) and no trusted keyring (.builtin_trusted_keys, .secondary_trusted_keys, .platform) holds the key that signed the image"
	case unix.ENODATA:
		return "the kernel requires signed images (CONFIG_KEXEC_SIG_FORCE or secure boot policy) and this PE image carries no signature"
	case unix.ELIBBAD:
		return "the kernel requires signed images (CONFIG_KEXEC_SIG_FORCE or secure boot policy) and the image is not a PE file, so it cannot carry a signature"
	case unix.EBADMSG:
		return "the kernel requires signed images and the image's PE signature or certificate table is malformed"
	case unix.ENOPKG:
		return "the kernel requires signed images and lacks the hash or public-key algorithm the image's signature uses"
	case unix.ENOEXEC:
		return "no kexec_file loader of this architecture recognised the image: on x86 it must be a relocatable 64-bit bzImage (boot protocol >= 2.12, XLF_KERNEL_64, XLF_CAN_BE_LOADED_ABOVE_4G, XLF_5LEVEL under 5-level paging); a kernel of another architecture or a compressed vmlinux also ends here"
	case unix.EBUSY:
		return "another kexec load or unload holds kexec_lock right now (a concurrent kexec or crash-kernel load): retry"
	case unix.ENOSYS:
		return "the running kernel has no kexec_file_load: built without CONFIG_KEXEC_FILE, an architecture without it, or a seccomp filter (container) blocks the call"
	case unix.EINVAL:
		return "an argument was refused: unknown flags, a kernel or initrd that is empty or not a regular file, or a command line without its NUL or longer than the image's setup_header.cmdline_size minus the 30 bytes kept for elfcorehdr="
	case unix.ENOMEM:
		return "the kernel could not allocate memory to copy the kernel, initrd and purgatory into: give the machine more RAM or shrink the initrd"
	case unix.EADDRNOTAVAIL:
		return "no free physical range fits a segment (kexec_locate_mem_hole): RAM too small or cut up by memmap= and crashkernel= reservations"
	case unix.EFBIG:
		return "the kernel or initrd file is larger than kernel_read_file accepts (INT_MAX bytes)"
	case unix.ETXTBSY:
		return "the kernel or initrd file is open for writing somewhere (kernel_read_file denies write access while it reads)"
	case unix.EBADF:
		return "a kernel or initrd file descriptor is not open (an initrd fd of -1 needs KEXEC_FILE_NO_INITRAMFS)"
	}
	return "no kexec_file_load-specific meaning known for this errno; see dmesg"
}

// loadDetail adds what the machine under root says about errno for opts.
func loadDetail(errno unix.Errno, opts LoadOptions, root string) string {
	switch errno {
	case unix.EPERM:
		p, err := ReadPreflight(root)
		if err != nil {
			return err.Error()
		}
		if why := append(p.Problems(), p.Warnings()...); len(why) > 0 {
			return strings.Join(why, "; ")
		}
		return "preflight finds no cause: suspect an LSM (SELinux, AppArmor, IMA appraisal policy) or the signature check under lockdown"
	case unix.ENOEXEC:
		if err := CheckKernelImage(opts.Kernel); err != nil {
			return err.Error()
		}
		return "the image passes this package's header checks; dmesg has the loader's reason"
	case unix.EINVAL:
		if strings.IndexByte(opts.Cmdline, 0) >= 0 {
			return "the command line contains a NUL byte"
		}
		if limit, ok := cmdlineLimit(opts.Kernel); ok && len(opts.Cmdline) > limit {
			return fmt.Sprintf("the command line is %d bytes; %s accepts at most %d", len(opts.Cmdline), opts.Kernel, limit)
		}
	}
	return ""
}

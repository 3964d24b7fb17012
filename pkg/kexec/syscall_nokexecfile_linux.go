//go:build !(amd64 || arm || arm64 || loong64 || ppc || ppc64 || ppc64le || riscv64 || s390x)

package kexec

import "golang.org/x/sys/unix"

// kexecFileLoad fails as the kernel would: these architectures have no
// kexec_file_load system call.
func kexecFileLoad(kernelFd, initrdFd int, cmdline string, flags int) error {
	return unix.ENOSYS
}

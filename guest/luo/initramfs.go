package main

import (
	"io"

	"github.com/kho-sim/kho-sim/guest/internal/pid1"
)

// Paths inside the initramfs.
const (
	initPath   = "init"
	kernelPath = "bzImage"
	// radixPath holds stage 1's snapshot of its outgoing radix tree, in
	// pkg/kho's dump format (absent in the first initramfs).
	radixPath = "kho-radix.txt"
)

// Permission bits of /init and of the files it reads.
const (
	initMode = 0o755
	dataMode = 0o644
)

// initramfsFiles is the guest's root file system: this program as /init,
// the kernel it kexecs as /bzImage and, when non-empty, the radix snapshot
// as /kho-radix.txt. The host packs the first initramfs from it and the
// guest the next one.
func initramfsFiles(initBin, kernel, radix []byte) []pid1.File {
	files := []pid1.File{
		{Name: initPath, Data: initBin, Mode: initMode},
		{Name: kernelPath, Data: kernel, Mode: dataMode},
	}
	if len(radix) > 0 {
		files = append(files, pid1.File{Name: radixPath, Data: radix, Mode: dataMode})
	}
	return files
}

// writeInitramfs writes initramfsFiles as a newc cpio.
func writeInitramfs(w io.Writer, initBin, kernel, radix []byte) error {
	return pid1.WriteInitramfs(w, initramfsFiles(initBin, kernel, radix)...)
}

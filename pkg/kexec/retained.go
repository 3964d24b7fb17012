package kexec

import (
	"fmt"
	"os"
)

// RetainedInitrdPath is where a kernel booted with retain_initrd keeps
// the initramfs it booted from (init/initramfs.c: the initrd memory is not
// freed but published as a read-only sysfs file).
const RetainedInitrdPath = "/sys/firmware/initrd"

// RetainParam is the kernel parameter that keeps it.
const RetainParam = "retain_initrd"

// RetainedInitrd opens the initramfs this kernel booted from, when the
// kernel retained it: the next kernel's initrd without walking and
// repacking the root file system. The size is the file's.
func RetainedInitrd() (*os.File, int64, error) {
	f, err := os.Open(RetainedInitrdPath)
	if err != nil {
		return nil, 0, fmt.Errorf("retained initrd: %w", err)
	}
	st, err := f.Stat()
	if err != nil || st.Size() == 0 || !st.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("retained initrd: %s is not a non-empty file (%v)", RetainedInitrdPath, err)
	}
	return f, st.Size(), nil
}

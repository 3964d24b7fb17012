package kexec

import "os"

// LoadOptions is what FileLoad hands to kexec_file_load.
type LoadOptions struct {
	// Kernel is the path of the kernel image (a bzImage on x86).
	Kernel string
	// Initrd is the next initramfs, e.g. the memfd from RepackRootfs; nil
	// boots without one (KEXEC_FILE_NO_INITRAMFS). The kernel reads it from
	// offset 0 whatever its file position.
	Initrd *os.File
	// Cmdline is the next kernel's command line, e.g. from RewriteCmdline.
	Cmdline string
}

// RepackStats describes an archive written by RepackRootfs.
type RepackStats struct {
	// Files is the number of records (files, directories, symlinks,
	// devices...), the trailer excluded.
	Files int
	// Bytes is the size of the archive.
	Bytes int64
}

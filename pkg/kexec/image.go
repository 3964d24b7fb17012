package kexec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
)

// ErrUnloadableImage is wrapped by every CheckKernelImage error about the
// image's contents: kexec_file_load would refuse it with ENOEXEC.
var ErrUnloadableImage = errors.New("kexec_file_load would fail with ENOEXEC")

// x86 setup header (Documentation/arch/x86/boot.rst), offsets in the file.
const (
	offSetupSects   = 0x1f1
	offBootFlag     = 0x1fe
	offHdrS         = 0x202
	offVersion      = 0x206
	offLoadflags    = 0x211
	offRelocatable  = 0x234
	offXLoadflags   = 0x236
	offCmdlineSize  = 0x238
	x86HeaderLen    = 2 * 512 // bzImage64_probe wants two sectors
	loadedHigh      = 1 << 0  // loadflags: protected-mode code at 0x100000
	xlfKernel64     = 1 << 0  // xloadflags: 64-bit entry point at 0x200
	xlfAbove4G      = 1 << 1  // xloadflags: may be loaded above 4 GiB
	minBootProtocol = 0x020c
	// maxElfcorehdrStrLen is MAX_ELFCOREHDR_STR_LEN: bzImage64_load keeps
	// room for "elfcorehdr=0x<64-bit hex>" after the command line.
	maxElfcorehdrStrLen = 30
)

// CheckKernelImage reports why kexec_file_load would not accept the file at
// path. On amd64 it repeats bzImage64_probe's checks
// (arch/x86/kernel/kexec-bzimage64.c) plus the relocatable flag; an EFI stub
// ("MZ" at 0) is fine, since the setup header sits behind it. Elsewhere it
// only wants a readable regular file.
func CheckKernelImage(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("kexec: kernel image: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("kexec: kernel image: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file (%v): %w", path, fi.Mode().Type(), ErrUnloadableImage)
	}
	hdr := make([]byte, x86HeaderLen)
	n, err := io.ReadFull(f, hdr)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return fmt.Errorf("kexec: kernel image %s: %w", path, err)
	}
	if reason := imageProblem(hdr[:n], fi.Size(), runtime.GOARCH); reason != "" {
		return fmt.Errorf("%s %s: %w", path, reason, ErrUnloadableImage)
	}
	return nil
}

// imageProblem returns why an image starting with hdr, size bytes long,
// would not load on arch, or "" when it would.
func imageProblem(hdr []byte, size int64, arch string) string {
	if arch != "amd64" {
		return ""
	}
	return bzImage64Problem(hdr, size)
}

func bzImage64Problem(hdr []byte, size int64) string {
	le := binary.LittleEndian
	switch {
	case len(hdr) < x86HeaderLen:
		return fmt.Sprintf("is %d bytes, too short to be an x86 bzImage (at least %d)", len(hdr), x86HeaderLen)
	case string(hdr[offHdrS:offHdrS+4]) != "HdrS":
		return "is not an x86 bzImage (no HdrS magic at 0x202)"
	case le.Uint16(hdr[offBootFlag:]) != 0xaa55:
		return fmt.Sprintf("is not an x86 bzImage (boot_flag at 0x1fe is %#04x, want 0xaa55)", le.Uint16(hdr[offBootFlag:]))
	}
	version := le.Uint16(hdr[offVersion:])
	setupSects := int64(hdr[offSetupSects])
	if setupSects == 0 {
		setupSects = 4
	}
	switch {
	case version < minBootProtocol:
		return fmt.Sprintf("uses x86 boot protocol %d.%02d; kexec_file_load needs 2.12 or later", version>>8, version&0xff)
	case hdr[offLoadflags]&loadedHigh == 0:
		return "is a zImage, not a bzImage (LOADED_HIGH clear in loadflags at 0x211)"
	case le.Uint16(hdr[offXLoadflags:])&xlfKernel64 == 0:
		return "is not a 64-bit bzImage (XLF_KERNEL_64 clear in xloadflags at 0x236)"
	case le.Uint16(hdr[offXLoadflags:])&xlfAbove4G == 0:
		return "cannot be loaded above 4 GiB (XLF_CAN_BE_LOADED_ABOVE_4G clear in xloadflags at 0x236)"
	case hdr[offRelocatable] == 0:
		return "is not relocatable (relocatable_kernel at 0x234 is 0; build with CONFIG_RELOCATABLE=y)"
	case size < (setupSects+1)*512:
		return fmt.Sprintf("is truncated: %d bytes, but its %d setup sectors alone need %d", size, setupSects, (setupSects+1)*512)
	}
	return ""
}

// cmdlineLimit returns the longest command line (without its NUL) that
// bzImage64_load accepts for the x86 kernel at path, or ok=false if the
// image does not say (setup_header.cmdline_size exists since protocol 2.06).
func cmdlineLimit(path string) (limit int, ok bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	var hdr [offCmdlineSize + 4]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil || string(hdr[offHdrS:offHdrS+4]) != "HdrS" ||
		binary.LittleEndian.Uint16(hdr[offVersion:]) < 0x0206 {
		return 0, false
	}
	size := int(binary.LittleEndian.Uint32(hdr[offCmdlineSize:]))
	return size - maxElfcorehdrStrLen - 1, true
}

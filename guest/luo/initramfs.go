package main

import (
	"fmt"
	"io"

	"github.com/u-root/u-root/pkg/cpio"
)

// Paths inside the initramfs.
const (
	initPath   = "init"
	kernelPath = "bzImage"
	// radixPath holds stage 1's snapshot of its outgoing radix tree, in
	// pkg/gen72's dump format (absent in the first initramfs).
	radixPath = "kho-radix.txt"
)

// writeInitramfs writes the guest's whole root file system as a newc cpio:
// this program as /init, the kernel it kexecs as /bzImage, /dev/console
// (the kernel opens it for init's stdio before anything is mounted) and the
// mount points. The host builds the first initramfs with it and the guest
// the next one, so both boots run the same bytes. Records carry no
// timestamps, so the output depends only on its inputs. A non-empty radix
// is shipped as /kho-radix.txt.
func writeInitramfs(w io.Writer, initBin, kernel, radix []byte) error {
	cw := cpio.Newc.Writer(w)
	recs := []cpio.Record{
		cpio.Directory("dev", 0o755),
		cpio.CharDev("dev/console", 0o600, 5, 1),
		cpio.Directory("proc", 0o555),
		cpio.Directory("sys", 0o555),
		cpio.Directory("tmp", 0o1777),
		cpio.StaticRecord(initBin, cpio.Info{Name: initPath, Mode: cpio.S_IFREG | 0o755}),
		cpio.StaticRecord(kernel, cpio.Info{Name: kernelPath, Mode: cpio.S_IFREG | 0o644}),
	}
	if len(radix) > 0 {
		recs = append(recs, cpio.StaticRecord(radix, cpio.Info{Name: radixPath, Mode: cpio.S_IFREG | 0o644}))
	}
	if err := cpio.WriteRecords(cw, recs); err != nil {
		return fmt.Errorf("write initramfs: %w", err)
	}
	if err := cpio.WriteTrailer(cw); err != nil {
		return fmt.Errorf("write initramfs trailer: %w", err)
	}
	return nil
}

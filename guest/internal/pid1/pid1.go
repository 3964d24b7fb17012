// Package pid1 is what the real-kernel guests (guest/luo,
// guest/luo/selftest and guest/kexecload) need as the only process of a
// minimal initramfs: the program's two faces (the host command that packs
// its initramfs, the boot as PID 1), the file systems no init mounted, the
// command line and stage, the tagged console lines, the initramfs they
// repack for the next kernel, and the ways out (kexec, reset) that give the
// serial console time to drain.
package pid1

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/u-root/u-root/pkg/cpio"
	"golang.org/x/sys/unix"
)

// Mount mounts proc, sysfs and devtmpfs, and debugfs when asked: there is
// no init system to do it. A file system already mounted is fine.
func Mount(debugfs bool) error {
	mounts := []struct{ src, dir, fstype string }{
		{"proc", "/proc", "proc"},
		{"sysfs", "/sys", "sysfs"},
		{"devtmpfs", "/dev", "devtmpfs"},
	}
	if debugfs {
		mounts = append(mounts, struct{ src, dir, fstype string }{"debugfs", "/sys/kernel/debug", "debugfs"})
	}
	for _, m := range mounts {
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			return fmt.Errorf("mkdir %s: %w", m.dir, err)
		}
		if err := unix.Mount(m.src, m.dir, m.fstype, 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount -t %s %s %s: %w", m.fstype, m.src, m.dir, err)
		}
	}
	return nil
}

// Cmdline returns the kernel command line, trimmed.
func Cmdline() (string, error) {
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return "", fmt.Errorf("read /proc/cmdline: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Uptime is the kernel's uptime in seconds as /proc/uptime prints it, or
// "?" when it cannot be read.
func Uptime() string {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return "?"
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}

// File is one regular file of an initramfs, at Name (relative, "init").
type File struct {
	Name string
	Data []byte
	Mode uint64 // permission bits
}

// WriteInitramfs writes a newc cpio holding /dev/console (the kernel opens
// it for init's stdio before anything is mounted), the mount points and
// files, in that order. Records carry no timestamps, so the archive
// depends only on its inputs: the host packs the first initramfs and the
// guest the next with the same code, and both boots run the same bytes.
func WriteInitramfs(w io.Writer, files ...File) error {
	cw := cpio.Newc.Writer(w)
	recs := []cpio.Record{
		cpio.Directory("dev", 0o755),
		cpio.CharDev("dev/console", 0o600, 5, 1),
		cpio.Directory("proc", 0o555),
		cpio.Directory("sys", 0o555),
		cpio.Directory("tmp", 0o1777),
	}
	for _, f := range files {
		recs = append(recs, cpio.StaticRecord(f.Data, cpio.Info{Name: f.Name, Mode: cpio.S_IFREG | f.Mode}))
	}
	if err := cpio.WriteRecords(cw, recs); err != nil {
		return fmt.Errorf("write initramfs: %w", err)
	}
	if err := cpio.WriteTrailer(cw); err != nil {
		return fmt.Errorf("write initramfs trailer: %w", err)
	}
	return nil
}

// MemfdInitramfs writes the initramfs of files into a memfd, for
// kexec_file_load: the guest's root file system is the old initramfs, so
// the next one has nowhere else to go.
func MemfdInitramfs(files ...File) (*os.File, error) {
	var buf bytes.Buffer
	if err := WriteInitramfs(&buf, files...); err != nil {
		return nil, err
	}
	fd, err := unix.MemfdCreate("initramfs", 0)
	if err != nil {
		return nil, fmt.Errorf("repack: memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "initramfs-memfd")
	if _, err := f.Write(buf.Bytes()); err != nil {
		f.Close()
		return nil, fmt.Errorf("repack: %w", err)
	}
	return f, nil
}

// ReadFiles reads the named files from / with the given permission bits,
// to repack the running root file system.
func ReadFiles(mode func(name string) uint64, names ...string) ([]File, error) {
	files := make([]File, 0, len(names))
	for _, name := range names {
		data, err := os.ReadFile("/" + name)
		if err != nil {
			return nil, fmt.Errorf("repack: %w", err)
		}
		files = append(files, File{Name: name, Data: data, Mode: mode(name)})
	}
	return files, nil
}

package kexec

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// FileLoad, Unload and Reboot are not called here: the host has no
// kexec_file_load, and a reboot would take the host down. They run inside
// QEMU in the integration tests.

func TestExplainErrno(t *testing.T) {
	tests := []struct {
		errno unix.Errno
		want  []string // every one must appear
	}{
		{unix.EPERM, []string{"CAP_SYS_BOOT", "kexec_load_disabled", "lockdown"}},
		{unix.EKEYREJECTED, []string{"signed", "KEXEC_SIG_FORCE"}},
		{unix.ENOKEY, []string{"signed", "keyring"}},
		{unix.ENODATA, []string{"signed", "no signature"}},
		{unix.ELIBBAD, []string{"signed", "not a PE file"}},
		{unix.EBADMSG, []string{"signed", "malformed"}},
		{unix.ENOPKG, []string{"signed", "algorithm"}},
		{unix.ENOEXEC, []string{"bzImage", "XLF_KERNEL_64", "another architecture"}},
		{unix.EBUSY, []string{"kexec_lock", "crash"}},
		{unix.ENOSYS, []string{"CONFIG_KEXEC_FILE", "seccomp"}},
		{unix.EINVAL, []string{"cmdline_size", "flags", "empty", "regular file"}},
		{unix.ENOMEM, []string{"memory"}},
		{unix.EADDRNOTAVAIL, []string{"memmap="}},
		{unix.EFBIG, []string{"kernel_read_file"}},
		{unix.ETXTBSY, []string{"open for writing"}},
		{unix.EBADF, []string{"not open", "KEXEC_FILE_NO_INITRAMFS"}},
		{unix.EXDEV, []string{"no kexec_file_load-specific meaning"}},
	}
	seen := map[string]unix.Errno{}
	for _, tt := range tests {
		got := explainErrno(tt.errno)
		for _, w := range tt.want {
			if !strings.Contains(got, w) {
				t.Errorf("explainErrno(%s) = %q, want it to mention %q", unix.ErrnoName(tt.errno), got, w)
			}
		}
		if prev, dup := seen[got]; dup && tt.errno != unix.EXDEV {
			t.Errorf("explainErrno(%s) repeats the text for %s", unix.ErrnoName(tt.errno), unix.ErrnoName(prev))
		}
		seen[got] = tt.errno
	}
}

func TestLoadError(t *testing.T) {
	tests := []struct {
		name string
		err  *LoadError
		want string
	}{
		{
			name: "load",
			err: &LoadError{Kernel: "/boot/vmlinuz", KernelFd: 7, InitrdFd: 8, Cmdline: "console=ttyS0 memmap=16M$0x10000000",
				Errno: unix.EPERM, Detail: "kernel.kexec_load_disabled=1"},
			want: `SYS_kexec_file_load(kernel=/boot/vmlinuz fd=7, initrd fd=8, cmdline="console=ttyS0 memmap=16M$0x10000000", flags=0x0) = EPERM (operation not permitted): refused before`,
		},
		{
			name: "unload",
			err:  &LoadError{KernelFd: -1, InitrdFd: -1, Flags: unix.KEXEC_FILE_UNLOAD, Errno: unix.EBUSY},
			want: `SYS_kexec_file_load(kernel=<none> fd=-1, initrd fd=-1, cmdline="", flags=0x1) = EBUSY (device or resource busy): another kexec`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error = tt.err
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("Error() = %q\nwant prefix %q", err, tt.want)
			}
			if tt.err.Detail != "" && !strings.HasSuffix(err.Error(), "; here: "+tt.err.Detail) {
				t.Errorf("Error() = %q lacks the detail", err)
			}
			if !errors.Is(err, tt.err.Errno) {
				t.Errorf("errors.Is(err, %s) = false", unix.ErrnoName(tt.err.Errno))
			}
			if errors.Is(err, unix.ENOENT) {
				t.Error("errors.Is(err, ENOENT) = true")
			}
			var le *LoadError
			if !errors.As(err, &le) || le != tt.err {
				t.Error("errors.As(err, *LoadError) failed")
			}
		})
	}
}

func TestLoadDetail(t *testing.T) {
	tooLong := strings.Repeat("x", 2047-30)
	notKernel := filepath.Join(t.TempDir(), "vmlinuz")
	if err := os.WriteFile(notKernel, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	lockedDown := writeTree(t, map[string]string{
		loadDisabledPath: "1", statusPath: capEffRoot, lockdownPath: "none integrity [confidentiality]",
	})
	clean := writeTree(t, map[string]string{loadDisabledPath: "0", statusPath: capEffRoot})
	tests := []struct {
		name  string
		errno unix.Errno
		opts  LoadOptions
		root  string
		want  []string // "" alone: empty detail
	}{
		{"EPERM names preflight problems and lockdown", unix.EPERM, LoadOptions{}, lockedDown, []string{"kexec_load_disabled=1", "lockdown=confidentiality"}},
		{"EPERM with a clean preflight", unix.EPERM, LoadOptions{}, clean, []string{"preflight finds no cause"}},
		{"EPERM with unreadable state", unix.EPERM, LoadOptions{}, t.TempDir(), []string{"is /proc mounted"}},
		{"ENOEXEC runs the image check", unix.ENOEXEC, LoadOptions{Kernel: notKernel}, "", []string{notKernel, "would fail with ENOEXEC"}},
		{"EINVAL for a too long command line", unix.EINVAL, LoadOptions{Kernel: realSetup, Cmdline: tooLong}, "", []string{"2017 bytes", "at most 2016"}},
		{"EINVAL for a NUL in the command line", unix.EINVAL, LoadOptions{Kernel: realSetup, Cmdline: "a\x00b"}, "", []string{"NUL byte"}},
		{"EINVAL with a command line that fits", unix.EINVAL, LoadOptions{Kernel: realSetup, Cmdline: tooLong[1:]}, "", []string{""}},
		{"EBUSY has nothing to add", unix.EBUSY, LoadOptions{Kernel: realSetup}, "", []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := loadDetail(tt.errno, tt.opts, tt.root)
			if tt.want[0] == "" {
				if got != "" {
					t.Fatalf("loadDetail = %q, want empty", got)
				}
				return
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("loadDetail = %q, want it to mention %q", got, w)
				}
			}
		})
	}
}

// fakeKexec writes a shell script standing in for kexec-tools: it records
// its arguments and the initrd it was handed (fd 3, by name), then exits
// with status.
func fakeKexec(t *testing.T, status int) (path, log string) {
	t.Helper()
	dir := t.TempDir()
	path, log = filepath.Join(dir, "kexec"), filepath.Join(dir, "log")
	script := "#!/bin/sh\nfor a in \"$@\"; do echo \"arg $a\"; done >>" + log + "\n" +
		"case \"$*\" in *--initrd=/proc/self/fd/3*) echo \"initrd $(cat /proc/self/fd/3)\" >>" + log + ";; esac\n" +
		"echo 'kexec: fake says no' >&2\nexit " + strconv.Itoa(status) + "\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path, log
}

func TestKexecTools_LoadPassesKernelInitrdCmdline_RebootRunsE(t *testing.T) {
	path, log := fakeKexec(t, 0)
	initrd, err := os.CreateTemp(t.TempDir(), "initrd")
	if err != nil {
		t.Fatal(err)
	}
	defer initrd.Close()
	if _, err := initrd.WriteString("cpio bytes"); err != nil {
		t.Fatal(err)
	}
	var l Loader = KexecTools{Path: path}
	if err := l.Load(LoadOptions{Kernel: "/kernels/next", Initrd: initrd, Cmdline: `console=ttyS0 x="a b"`}); err != nil {
		t.Fatal(err)
	}
	if off, err := initrd.Seek(0, io.SeekCurrent); err != nil || off != int64(len("cpio bytes")) {
		t.Errorf("the parent's initrd offset moved to %d, %v", off, err)
	}
	if err := l.Reboot(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	want := "arg -s\narg -l\narg /kernels/next\narg --initrd=/proc/self/fd/3\narg --append=console=ttyS0 x=\"a b\"\ninitrd cpio bytes\narg -e\n"
	if string(got) != want {
		t.Fatalf("kexec-tools saw\n%s\nwant\n%s", got, want)
	}
}

func TestKexecTools_NoInitrd_NoInitrdArgument(t *testing.T) {
	path, log := fakeKexec(t, 0)
	if err := (KexecTools{Path: path}).Load(LoadOptions{Kernel: "k", Cmdline: "quiet"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(log); string(got) != "arg -s\narg -l\narg k\narg --append=quiet\n" {
		t.Fatalf("kexec-tools saw\n%s", got)
	}
}

func TestKexecTools_Failure_NamesCommandAndOutput(t *testing.T) {
	path, _ := fakeKexec(t, 3)
	err := (KexecTools{Path: path}).Load(LoadOptions{Kernel: "k", Cmdline: "quiet"})
	if err == nil || !strings.Contains(err.Error(), path+" -s -l k --append=quiet") ||
		!strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "kexec: fake says no") {
		t.Fatalf("Load = %v, want the command, its status and its output", err)
	}
	if (KexecTools{}).path() != KexecToolsPath {
		t.Error("the default path is not Debian's kexec")
	}
}

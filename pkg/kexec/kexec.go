package kexec

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

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

// A Loader loads the next kernel and reboots into it.
type Loader interface {
	// Load loads opts as the kernel the next Reboot starts, replacing
	// any image already loaded.
	Load(opts LoadOptions) error
	// Reboot starts the loaded kernel. It only returns on failure.
	Reboot() error
}

// FileLoader is this package's own loader: FileLoad and Reboot, the system
// calls made from this process.
type FileLoader struct{}

// Load is FileLoad.
func (FileLoader) Load(opts LoadOptions) error { return FileLoad(opts) }

// Reboot is Reboot.
func (FileLoader) Reboot() error { return Reboot() }

// KexecToolsPath is where Debian installs kexec-tools' kexec.
const KexecToolsPath = "/usr/sbin/kexec"

// KexecTools loads and reboots through kexec-tools, the baseline the own
// loader is measured against: kexec -s -l (its kexec_file_load path), then
// kexec -e. Both loaders load the same initrd with the same command line.
type KexecTools struct {
	// Path is the kexec binary; "" means KexecToolsPath.
	Path string
}

func (k KexecTools) path() string {
	if k.Path == "" {
		return KexecToolsPath
	}
	return k.Path
}

// Load runs kexec -s -l KERNEL --initrd=... --append=CMDLINE. The initrd is
// the file opts holds (a sealed memfd, say): the child inherits it as fd 3
// and opens it by name through /proc/self/fd, which gives a new file
// description, so the parent's offset stays put.
func (k KexecTools) Load(opts LoadOptions) error {
	args := []string{"-s", "-l", opts.Kernel}
	var extra []*os.File
	if opts.Initrd != nil {
		args = append(args, "--initrd=/proc/self/fd/3")
		extra = append(extra, opts.Initrd)
	}
	cmd := exec.Command(k.path(), append(args, "--append="+opts.Cmdline)...)
	cmd.ExtraFiles = extra
	return runTool(cmd)
}

// Reboot runs kexec -e, which boots the kernel kexec -l loaded. It only
// returns on failure.
func (k KexecTools) Reboot() error {
	return runTool(exec.Command(k.path(), "-e"))
}

// runTool runs cmd and reports a failure with the command and its output,
// so that kexec-tools' own words reach the caller.
func runTool(cmd *exec.Cmd) error {
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if msg == "" {
			msg = "no output"
		}
		return fmt.Errorf("%s: %w; output: %s", strings.Join(cmd.Args, " "), err, msg)
	}
	return nil
}

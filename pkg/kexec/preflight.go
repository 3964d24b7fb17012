package kexec

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// capSysBoot is CAP_SYS_BOOT's bit in the capability sets (include/uapi/linux/capability.h).
const capSysBoot = 22

// Paths read by ReadPreflight, relative to its root.
const (
	loadDisabledPath = "proc/sys/kernel/kexec_load_disabled"
	limitRebootPath  = "proc/sys/kernel/kexec_load_limit_reboot"
	statusPath       = "proc/self/status"
	lockdownPath     = "sys/kernel/security/lockdown"
	kexecLoadedPath  = "sys/kernel/kexec_loaded"
)

// Preflight is the machine state that decides whether kexec_file_load can
// succeed. Read it with ReadPreflight.
type Preflight struct {
	// KexecCore is true when /proc/sys/kernel/kexec_load_disabled exists,
	// which it does whenever the kernel has CONFIG_KEXEC_CORE.
	KexecCore bool
	// LoadDisabled is /proc/sys/kernel/kexec_load_disabled: once 1, every
	// kexec load fails with EPERM until the next boot.
	LoadDisabled bool
	// LoadLimitReboot is /proc/sys/kernel/kexec_load_limit_reboot (Linux
	// 6.7+): how many more loads are allowed, -1 for no limit or no such
	// sysctl. 0 makes every load fail with EPERM.
	LoadLimitReboot int
	// Lockdown is the active mode in /sys/kernel/security/lockdown: "none",
	// "integrity", "confidentiality", or "" when unknown (securityfs not
	// mounted or no lockdown LSM).
	Lockdown string
	// CapSysBoot is true when this process's effective capabilities
	// (/proc/self/status CapEff) hold CAP_SYS_BOOT.
	CapSysBoot bool
	// KexecLoaded is /sys/kernel/kexec_loaded: an image is already loaded;
	// a new load replaces it.
	KexecLoaded bool
}

// ReadPreflight reads the machine's kexec state from the files under root
// ("" means "/"), so tests can point it at a fake tree. Files that a kernel
// legitimately lacks leave their field at its "absent" value; an unreadable
// /proc/self/status or a malformed file is an error.
func ReadPreflight(root string) (Preflight, error) {
	if root == "" {
		root = "/"
	}
	p := Preflight{LoadLimitReboot: -1}
	var err error
	if p.KexecCore, p.LoadDisabled, err = readBool(root, loadDisabledPath); err != nil {
		return Preflight{}, err
	}
	if _, p.KexecLoaded, err = readBool(root, kexecLoadedPath); err != nil {
		return Preflight{}, err
	}
	if s, ok, err := readTrimmed(root, limitRebootPath); err != nil {
		return Preflight{}, err
	} else if ok {
		if p.LoadLimitReboot, err = strconv.Atoi(s); err != nil {
			return Preflight{}, fmt.Errorf("kexec: %s: %w", filepath.Join(root, limitRebootPath), err)
		}
	}
	if s, ok, err := readTrimmed(root, lockdownPath); err != nil {
		return Preflight{}, err
	} else if ok {
		// The active mode is the bracketed one: "none [integrity] confidentiality".
		if _, rest, found := strings.Cut(s, "["); found {
			p.Lockdown, _, _ = strings.Cut(rest, "]")
		}
	}
	if p.CapSysBoot, err = readCapSysBoot(filepath.Join(root, statusPath)); err != nil {
		return Preflight{}, err
	}
	return p, nil
}

// Problems returns, one sentence each, what will make every
// kexec_file_load on this machine fail; it is empty when nothing is known to
// stop a load.
func (p Preflight) Problems() []string {
	var out []string
	if !p.KexecCore {
		out = append(out, "no /proc/sys/kernel/kexec_load_disabled: the kernel is built without CONFIG_KEXEC_CORE (or /proc is not procfs); kexec is impossible")
	}
	if !p.CapSysBoot {
		out = append(out, "CAP_SYS_BOOT is not in this process's effective capabilities (/proc/self/status CapEff): run as root in the initial user namespace")
	}
	if p.LoadDisabled {
		out = append(out, "kernel.kexec_load_disabled=1: kexec loads are refused until the next boot (the sysctl can only be set, never cleared); find who set it (sysctl.d, init scripts)")
	}
	if p.LoadLimitReboot == 0 {
		out = append(out, "kernel.kexec_load_limit_reboot=0: no kexec loads are left until the next boot (the limit only ever decreases)")
	}
	return out
}

// Warnings returns conditions that do not stop every load but change what
// the kernel accepts or does.
func (p Preflight) Warnings() []string {
	var out []string
	if p.Lockdown == "integrity" || p.Lockdown == "confidentiality" {
		out = append(out, fmt.Sprintf("kernel lockdown=%s: kexec_file_load only accepts a kernel image whose PE signature verifies against the kernel's trusted keyrings (EPERM otherwise); use a signed distribution kernel or boot with lockdown=none", p.Lockdown))
	}
	if p.KexecLoaded {
		out = append(out, "a kexec image is already loaded (/sys/kernel/kexec_loaded=1): the next load replaces it")
	}
	return out
}

// readTrimmed reads root/rel; ok is false when it does not exist.
func readTrimmed(root, rel string) (s string, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(root, rel))
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("kexec: %w", err)
	}
	return string(bytes.TrimSpace(b)), true, nil
}

// readBool reads a "0"/"1" kernel flag file; ok is false when it does not exist.
func readBool(root, rel string) (ok, v bool, err error) {
	s, ok, err := readTrimmed(root, rel)
	if err != nil || !ok {
		return ok, false, err
	}
	switch s {
	case "0":
		return true, false, nil
	case "1":
		return true, true, nil
	}
	return true, false, fmt.Errorf("kexec: %s: want 0 or 1, got %q", filepath.Join(root, rel), s)
}

// readCapSysBoot reports whether CapEff in a /proc/PID/status file holds CAP_SYS_BOOT.
func readCapSysBoot(path string) (bool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return false, fmt.Errorf("kexec: reading capabilities (is /proc mounted?): %w", err)
	}
	_, after, found := strings.Cut(string(b), "\nCapEff:")
	if !found {
		return false, fmt.Errorf("kexec: %s: no CapEff line", path)
	}
	hex, _, _ := strings.Cut(after, "\n")
	caps, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
	if err != nil {
		return false, fmt.Errorf("kexec: %s: CapEff: %w", path, err)
	}
	return caps&(1<<capSysBoot) != 0, nil
}

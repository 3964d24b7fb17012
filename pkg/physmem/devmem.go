package physmem

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// DevMemSpec says which physical range to map and where to look.
type DevMemSpec struct {
	Range    Range
	DevMem   string // default "/dev/mem"
	IOMem    string // default "/proc/iomem"
	Lockdown string // default "/sys/kernel/security/lockdown"; read only to explain a refusal
	// Uncached opens /dev/mem with O_SYNC, which asks for an uncached
	// (UC-) mapping; the default is write-back (see OpenDevMem).
	Uncached bool
}

func (s DevMemSpec) withDefaults() DevMemSpec {
	if s.DevMem == "" {
		s.DevMem = "/dev/mem"
	}
	if s.IOMem == "" {
		s.IOMem = "/proc/iomem"
	}
	if s.Lockdown == "" {
		s.Lockdown = "/sys/kernel/security/lockdown"
	}
	return s
}

// OpenDevMem maps spec.Range of physical memory through /dev/mem. It first
// checks /proc/iomem and refuses any range that is not wholly inside one
// Reserved entry or that touches System RAM. Errors wrap ErrNotReserved,
// ErrIOMemHidden, ErrNoDevMem or ErrDevMemDenied as well as the errno, and
// say what to change.
func OpenDevMem(spec DevMemSpec) (*Region, error) {
	spec = spec.withDefaults()
	rg := spec.Range
	if err := checkRegionRange(rg); err != nil {
		return nil, err
	}
	entries, err := ReadIOMem(spec.IOMem)
	if err != nil {
		return nil, fmt.Errorf("physmem: read the memory map: %w", err)
	}
	if err := CheckReserved(entries, rg); err != nil {
		return nil, err
	}
	// Without O_SYNC, x86's phys_mem_access_prot_allowed asks for a
	// write-back mapping of a range that is not System RAM, and PAT grants
	// it unless the MTRRs make the range uncached (QEMU's and a PC's
	// firmware make all RAM write-back, a memmap= range included; the
	// guest's /sys/kernel/debug/x86/pat_memtype_list shows "write-back").
	// The reserved region is ordinary RAM: the kernel that hands over,
	// and the next one that receives, access KHO memory cached, and the CPU
	// caches stay coherent across kexec, so nothing is lost by caching.
	// O_SYNC would make every access uncached (UC-), which on hardware
	// turns checksumming a large payload into one bus read per load.
	flags := unix.O_RDWR | unix.O_CLOEXEC
	if spec.Uncached {
		flags |= unix.O_SYNC
	}
	fd, err := unix.Open(spec.DevMem, flags, 0)
	if err != nil {
		return nil, explainOpen(spec, err)
	}
	defer unix.Close(fd) // the mapping outlives the descriptor
	mem, err := unix.Mmap(fd, int64(rg.Start), int(rg.Size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, explainMmap(spec, err)
	}
	return &Region{base: rg.Start, size: rg.Size, mem: mem, unmap: true}, nil
}

func explainOpen(spec DevMemSpec, err error) error {
	what := fmt.Sprintf("open(%s, O_RDWR)", spec.DevMem)
	if spec.Uncached {
		what = fmt.Sprintf("open(%s, O_RDWR|O_SYNC)", spec.DevMem)
	}
	switch {
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("%w: %s: %w: the kernel has no CONFIG_DEVMEM, or devtmpfs is not mounted on /dev (mount -t devtmpfs none /dev)",
			ErrNoDevMem, what, err)
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fmt.Errorf("%w: %s: %w: run as root (needs CAP_SYS_RAWIO)%s",
			ErrDevMemDenied, what, err, lockdownHint(spec.Lockdown))
	}
	return fmt.Errorf("physmem: %s: %w", what, err)
}

func explainMmap(spec DevMemSpec, err error) error {
	what := fmt.Sprintf("mmap(%s, offset %#x, %d bytes, shared rw)", spec.DevMem, spec.Range.Start, spec.Range.Size)
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fmt.Errorf("%w: %s: %w: CONFIG_STRICT_DEVMEM refuses ranges that are System RAM, and CONFIG_IO_STRICT_DEVMEM ranges a driver claimed; check /proc/iomem for %v%s",
			ErrDevMemDenied, what, err, spec.Range, lockdownHint(spec.Lockdown))
	case errors.Is(err, unix.EINVAL):
		return fmt.Errorf("physmem: %s: %w: the kernel rejected the range (beyond the physical address space, or mapped elsewhere with another caching mode)",
			what, err)
	}
	return fmt.Errorf("physmem: %s: %w", what, err)
}

// lockdownHint names the active kernel lockdown mode if it blocks /dev/mem.
func lockdownHint(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "; or kernel lockdown forbids /dev/mem (" + path + " unreadable)"
	}
	// The file reads like "none [integrity] confidentiality".
	_, mode, ok := strings.Cut(string(b), "[")
	mode, _, _ = strings.Cut(mode, "]")
	switch {
	case !ok || mode == "":
		return "; kernel lockdown mode unknown (" + path + ": " + strings.TrimSpace(string(b)) + ")"
	case mode == "none":
		return " (kernel lockdown is off)"
	}
	return "; kernel lockdown is in " + mode + " mode, which forbids /dev/mem: boot without Secure Boot and without lockdown= on the command line"
}

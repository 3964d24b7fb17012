package physmem

import "errors"

// The package's sentinel errors, for errors.Is.
var (
	// ErrOutOfRegion means an access or reservation falls outside the region.
	ErrOutOfRegion = errors.New("physmem: outside the region")
	// ErrNoDevMem means there is no /dev/mem to open.
	ErrNoDevMem = errors.New("physmem: /dev/mem is missing")
	// ErrDevMemDenied means the kernel refused to open or map /dev/mem.
	ErrDevMemDenied = errors.New("physmem: /dev/mem access denied")
	// ErrIOMemHidden means /proc/iomem was read without CAP_SYS_ADMIN: the
	// kernel then prints every address as zero.
	ErrIOMemHidden = errors.New("physmem: /proc/iomem shows only zero addresses: run as root (needs CAP_SYS_ADMIN)")
	// ErrNotReserved means the range is not reserved memory the running
	// kernel leaves alone.
	ErrNotReserved = errors.New("physmem: range is not reserved memory")
)

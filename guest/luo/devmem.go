package main

import (
	"fmt"
	"os"

	"github.com/kho-sim/kho-sim/pkg/gen72"
)

// maxDevMemRead bounds one read, whatever a hostile handover asks for.
const maxDevMemRead = 1 << 20

// devMem reads physical memory with pread on /dev/mem (the kernel is built
// without STRICT_DEVMEM, so all RAM is readable) and records every page a
// read touched, so the guest can print exactly what a decode looked at,
// even when the decode fails half way.
type devMem struct {
	f       *os.File
	touched map[uint64]bool
}

func openDevMem() (*devMem, error) {
	f, err := os.Open("/dev/mem")
	if err != nil {
		return nil, fmt.Errorf("open /dev/mem: %w", err)
	}
	return &devMem{f: f, touched: make(map[uint64]bool)}, nil
}

// Bytes implements gen72.Memory.
func (d *devMem) Bytes(pa, n uint64) ([]byte, error) {
	if n > maxDevMemRead || pa >= gen72.MaxPhysAddr || pa+n > gen72.MaxPhysAddr {
		return nil, fmt.Errorf("/dev/mem: %d bytes at %#x: %w", n, pa, gen72.ErrUnavailable)
	}
	b := make([]byte, n)
	if _, err := d.f.ReadAt(b, int64(pa)); err != nil {
		return nil, fmt.Errorf("/dev/mem: %d bytes at %#x: %w", n, pa, err)
	}
	for p := pa &^ (gen72.PageSize - 1); p < pa+n; p += gen72.PageSize {
		d.touched[p] = true
	}
	return b, nil
}

// page reads one page without recording it.
func (d *devMem) page(pa uint64) ([]byte, error) {
	b := make([]byte, gen72.PageSize)
	if _, err := d.f.ReadAt(b, int64(pa)); err != nil {
		return nil, fmt.Errorf("/dev/mem: page %#x: %w", pa, err)
	}
	return b, nil
}

package main

import (
	"fmt"
	"os"

	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/physmem"
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

// Range implements kho.Memory: all of physical memory.
func (d *devMem) Range() physmem.Range { return physmem.Range{Start: 0, Size: kho.MaxPhysAddr} }

// Bytes implements kho.Memory.
func (d *devMem) Bytes(pa, n uint64) ([]byte, error) {
	if n > maxDevMemRead || pa >= kho.MaxPhysAddr || pa+n > kho.MaxPhysAddr {
		return nil, fmt.Errorf("/dev/mem: %d bytes at %#x: %w", n, pa, kho.ErrUnavailable)
	}
	b := make([]byte, n)
	if _, err := d.f.ReadAt(b, int64(pa)); err != nil {
		return nil, fmt.Errorf("/dev/mem: %d bytes at %#x: %w", n, pa, err)
	}
	for p := pa &^ (physmem.PageSize - 1); p < pa+n; p += physmem.PageSize {
		d.touched[p] = true
	}
	return b, nil
}

// page reads one page without recording it.
func (d *devMem) page(pa uint64) ([]byte, error) {
	b := make([]byte, physmem.PageSize)
	if _, err := d.f.ReadAt(b, int64(pa)); err != nil {
		return nil, fmt.Errorf("/dev/mem: page %#x: %w", pa, err)
	}
	return b, nil
}

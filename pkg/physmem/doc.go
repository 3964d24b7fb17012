// Package physmem gives access to a region of physical memory by physical
// address, and allocates pages from it.
//
// A Region is backed either by a file (tests and simulation: the byte at file
// offset k stands for physical address base+k) or by /dev/mem on a machine
// booted with the region reserved through memmap=SIZE$ADDR (see
// Documentation/admin-guide/kernel-parameters.txt). OpenDevMem refuses to map
// anything /proc/iomem does not list as Reserved, so System RAM in use by the
// running kernel is never touched.
//
// The Allocator hands out zeroed, page-granular blocks lowest address first,
// so the same sequence of calls gives the same layout on every run.
//
// The package knows nothing of the data placed in the memory.
package physmem

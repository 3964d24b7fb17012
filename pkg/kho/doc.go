// Package kho models Kexec HandOver as Linux 7.0 implements it in
// kernel/liveupdate/kexec_handover.c: memory preservation, the KHO root FDT
// with one child per subsystem, and the preserved-memory map in its 7.0
// chunk-and-bitmap format.
//
// The outgoing side (Outgoing) allocates and preserves memory from a
// physmem.Region and, at Finalize, writes the memory map and the root FDT
// there. The incoming side (ReadIncoming) treats the region as untrusted:
// every address, count and size read from it is checked, and Map refuses any
// page the memory map does not list.
package kho

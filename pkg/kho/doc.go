// Package kho models Kexec HandOver as Linux implements it in
// kernel/liveupdate/kexec_handover.c: memory preservation, the KHO root FDT
// with one child per subsystem, and the preserved-memory map, in two
// generations: 7.0's "kho-v1" (children hold an "fdt" address; the map is a
// list of chunks of per-order bitmaps) and 7.2's "kho-v4" (children hold
// "blob-size" and "preserved-data"; the map is one radix tree over all
// orders; a "kexec-metadata" child counts the kexec boots).
//
// The outgoing side (Outgoing) allocates and preserves memory from a
// physmem.Region and, at Finalize, writes the memory map and the root FDT
// there. The incoming side (ReadIncoming) reads any Memory: a contiguous
// physmem.Region (the reserved region, an image file, /dev/mem) or a sparse
// PageStore (a real kernel's dump). It recognises the generation from the
// root's compatible and treats the memory as untrusted: every address,
// count and size read from it is checked, and Map refuses any page the
// memory map does not list.
//
// The package also holds the text format in which a guest prints the pages
// of a handover (FormatDumpLine, ParseDump) and x86's struct kho_data
// (Setup), through which kexec_file_load tells a 7.2 kernel where the
// handover is.
package kho

// Package gen72 reads the kexec handover that Linux 7.2 leaves in memory for
// the next kernel: the KHO root FDT ("kho-v4"), the radix-tree map of
// preserved memory, the Live Update Orchestrator's raw "luo-v5" blob with its
// linked session and file blocks and the FLB page, and the "kexec-metadata"
// blob.
//
// The reader is strict: the bytes come from another kernel's memory (through
// /dev/mem, or from a captured dump) and may be anything. Every pointer is
// checked for alignment, every count against its block, every linked list
// for cycles, every page for being claimed twice, and every structure for
// lying inside memory the memory map says is preserved; work is bounded by
// the limits below. Nothing panics and nothing is read outside what the
// Memory hands out.
//
// The layouts are those of the Linux 7.2 sources (include/linux/kho/abi/ and
// kernel/liveupdate/): kexec_handover.h for the root FDT and radix tree,
// luo.h and block.h for the LUO structures, kexec_metadata.h for the
// metadata. All integers are little endian (x86-64); pages are 4096 bytes.
//
// The package also defines the text format in which a guest prints the
// pages of a handover to its console (FormatDumpLine, ParseDump) and a
// PageStore that serves such a dump as Memory, so tests decode a real
// kernel's handover.
package gen72

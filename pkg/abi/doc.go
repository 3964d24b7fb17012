// Package abi describes, in one place, the C structs kho-sim writes into a
// handover image: the packed serialization structs of Linux 7.0's
// include/linux/kho/abi/luo.h (FLB page, session block, file block), the
// preserved-memory map chunks of kernel/liveupdate/kexec_handover.c, and
// 7.2's struct luo_ser, block header (block.h) and kexec-metadata
// (kexec_metadata.h), with the limits, compatible strings and FDT property
// names that go with them. Not described here: the FDTs themselves
// (pkg/fdt), 7.2's radix tree (pages of bare u64 tables and bitmaps, no
// struct) and luo-v2's 24-byte luo_ser.
//
// Nothing here is written by hand twice: Layouts and Constants are computed
// from the constants of pkg/flb, pkg/luo and pkg/kho, which do the encoding,
// so a change there shows up here. CHeader renders the layouts as C, and
// CheckBTF compares them, field by field, with the structs a kernel's BTF
// (/sys/kernel/btf/vmlinux, or the .BTF section of a vmlinux) describes.
package abi

/*
 * Linux 7.2's memfd-v2 and vmalloc preservation structs, declared the way
 * the kernel declares them, for tests that compare pkg/abi's MemfdLayouts
 * with what a C compiler makes of the kernel's declarations. Written from
 * Debian's linux-source-7.2 (7.2.13):
 *   include/linux/kho/abi/kexec_handover.h  (DECLARE_KHOSER_PTR, kho_vmalloc*)
 *   include/linux/kho/abi/memfd.h           (memfd_luo_folio_ser, memfd_luo_ser)
 * Kept separate from pkg/abi's Go description on purpose: it must not be
 * generated from it.
 */
#ifndef MEMFD_ABI_TESTDATA_H
#define MEMFD_ABI_TESTDATA_H

typedef unsigned long long u64;
typedef unsigned int u32;

#define __packed __attribute__((packed))

/* x86-64 */
#define PAGE_SIZE	4096UL

#define DECLARE_KHOSER_PTR(name, type)	\
	union {                        \
		u64 phys;              \
		type ptr;              \
	} name

struct kho_vmalloc_hdr {
	DECLARE_KHOSER_PTR(next, struct kho_vmalloc_chunk *);
};

#define KHO_VMALLOC_SIZE				\
	((PAGE_SIZE - sizeof(struct kho_vmalloc_hdr)) / \
	 sizeof(u64))

struct kho_vmalloc_chunk {
	struct kho_vmalloc_hdr hdr;
	u64 phys[KHO_VMALLOC_SIZE];
};

_Static_assert(sizeof(struct kho_vmalloc_chunk) == PAGE_SIZE, "chunk is a page");

struct kho_vmalloc {
	DECLARE_KHOSER_PTR(first, struct kho_vmalloc_chunk *);
	unsigned int total_pages;
	unsigned short flags;
	unsigned short order;
};

struct memfd_luo_folio_ser {
	u64 pfn:52;
	u64 flags:12;
	u64 index;
} __packed;

struct memfd_luo_ser {
	u64 pos;
	u64 size;
	u32 seals;
	u32 flags;
	u64 nr_folios;
	struct kho_vmalloc folios;
} __packed;

/* Used, so that every compiler keeps the types' debugging information. */
struct kho_vmalloc_chunk memfd_abi_chunk;
struct memfd_luo_folio_ser memfd_abi_folio;
struct memfd_luo_ser memfd_abi_ser;

#endif /* MEMFD_ABI_TESTDATA_H */

/*
 * Linux 7.0's and 7.2's handover ABI, declared the way the kernel declares it, for
 * tests that compare kho-sim's Go encoders with what a C compiler makes of
 * the kernel's declarations. Written from:
 *   include/linux/kho/abi/luo.h            (LUO FDT names, packed *_ser structs)
 *   include/uapi/linux/liveupdate.h         (LIVEUPDATE_SESSION_NAME_LENGTH)
 *   include/linux/kho/abi/kexec_handover.h  (KHO root FDT names)
 *   kernel/liveupdate/kexec_handover.c      (khoser_* memory map chunks)
 *   kernel/liveupdate/luo_{session,file,flb}.c (page counts and limits)
 * and, for 7.2 (7.2.13):
 *   include/linux/kho/abi/luo.h             (struct luo_ser)
 *   include/linux/kho/abi/block.h           (struct kho_block_header_ser)
 *   include/linux/kho/abi/kexec_metadata.h  (struct kho_kexec_metadata)
 * Kept separate from pkg/abi's Go description on purpose: it must not be
 * generated from it.
 */
#ifndef LUO_ABI_TESTDATA_H
#define LUO_ABI_TESTDATA_H

typedef unsigned long long u64;
typedef unsigned int u32;
typedef u64 phys_addr_t;

#define __packed __attribute__((packed))

/* x86-64 */
#define PAGE_SHIFT	12
#define PAGE_SIZE	(1UL << PAGE_SHIFT)
#define MAX_PAGE_ORDER	10

/* include/uapi/linux/liveupdate.h */
#define LIVEUPDATE_SESSION_NAME_LENGTH 64

/* include/linux/kho/abi/kexec_handover.h */
#define KHO_FDT_COMPATIBLE "kho-v1"
#define KHO_FDT_MEMORY_MAP_PROP_NAME "preserved-memory-map"
#define KHO_FDT_SUB_TREE_PROP_NAME "fdt"

/* include/linux/kho/abi/luo.h */
#define LUO_FDT_SIZE		PAGE_SIZE
#define LUO_FDT_KHO_ENTRY_NAME	"LUO"
#define LUO_FDT_COMPATIBLE	"luo-v1"
#define LUO_FDT_LIVEUPDATE_NUM	"liveupdate-number"

#define LIVEUPDATE_HNDL_COMPAT_LENGTH	48

struct luo_file_ser {
	char compatible[LIVEUPDATE_HNDL_COMPAT_LENGTH];
	u64 data;
	u64 token;
} __packed;

struct luo_file_set_ser {
	u64 files;
	u64 count;
} __packed;

#define LUO_FDT_SESSION_NODE_NAME	"luo-session"
#define LUO_FDT_SESSION_COMPATIBLE	"luo-session-v2"
#define LUO_FDT_SESSION_HEADER		"luo-session-header"

struct luo_session_header_ser {
	u64 count;
} __packed;

struct luo_session_ser {
	char name[LIVEUPDATE_SESSION_NAME_LENGTH];
	struct luo_file_set_ser file_set_ser;
} __packed;

#define LIVEUPDATE_FLB_COMPAT_LENGTH	48

#define LUO_FDT_FLB_NODE_NAME	"luo-flb"
#define LUO_FDT_FLB_COMPATIBLE	"luo-flb-v1"
#define LUO_FDT_FLB_HEADER	"luo-flb-header"

struct luo_flb_header_ser {
	u64 pgcnt;
	u64 count;
} __packed;

struct luo_flb_ser {
	char name[LIVEUPDATE_FLB_COMPAT_LENGTH];
	u64 data;
	u64 count;
} __packed;

/* kernel/liveupdate/luo_session.c */
#define LUO_SESSION_PGCNT	16ul
#define LUO_SESSION_MAX		(((LUO_SESSION_PGCNT << PAGE_SHIFT) -	\
		sizeof(struct luo_session_header_ser)) /		\
		sizeof(struct luo_session_ser))

/* kernel/liveupdate/luo_file.c */
#define LUO_FILE_PGCNT		2ul
#define LUO_FILE_MAX							\
	((LUO_FILE_PGCNT << PAGE_SHIFT) / sizeof(struct luo_file_ser))

/* kernel/liveupdate/luo_flb.c */
#define LUO_FLB_PGCNT		1ul
#define LUO_FLB_MAX		(((LUO_FLB_PGCNT << PAGE_SHIFT) -	\
		sizeof(struct luo_flb_header_ser)) / sizeof(struct luo_flb_ser))

/* kernel/liveupdate/kexec_handover.c: pointers travel as physical addresses */
#define DECLARE_KHOSER_PTR(name, type) \
	union {                        \
		phys_addr_t phys;      \
		type ptr;              \
	} name

struct kho_mem_phys_bits;
struct khoser_mem_chunk;

struct khoser_mem_bitmap_ptr {
	phys_addr_t phys_start;
	DECLARE_KHOSER_PTR(bitmap, struct kho_mem_phys_bits *);
};

struct khoser_mem_chunk_hdr {
	DECLARE_KHOSER_PTR(next, struct khoser_mem_chunk *);
	unsigned int order;
	unsigned int num_elms;
};

#define KHOSER_BITMAP_SIZE                                   \
	((PAGE_SIZE - sizeof(struct khoser_mem_chunk_hdr)) / \
	 sizeof(struct khoser_mem_bitmap_ptr))

struct khoser_mem_chunk {
	struct khoser_mem_chunk_hdr hdr;
	struct khoser_mem_bitmap_ptr bitmaps[KHOSER_BITMAP_SIZE];
};

/* 7.2: include/linux/kho/abi/luo.h */
#define LUO_ABI_COMPATIBLE	"luo-v5"
#define LUO_ABI_COMPAT_LEN	8

struct luo_ser {
	char compatible[LUO_ABI_COMPAT_LEN];
	u64 liveupdate_num;
	u64 sessions_pa;
	u64 flbs_pa;
} __packed;

/* 7.2: include/linux/kho/abi/block.h */
struct kho_block_header_ser {
	u64 next;
	u64 count;
} __packed;

/* 7.2: include/linux/kho/abi/kexec_metadata.h */
#define __NEW_UTS_LEN	64

struct kho_kexec_metadata {
	u32 version;
	char previous_release[__NEW_UTS_LEN + 1];
	u32 kexec_count;
} __packed;

#endif /* LUO_ABI_TESTDATA_H */

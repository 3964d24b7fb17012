package kexec

// kexec_load(2) of an x86-64 bzImage that a KHO kernel (Linux 7.2 and later)
// boots with a handover: a stock kernel's kexec_file_load adds no
// SETUP_KEXEC_KHO entry, so this mode builds every segment in user space
// (kernel/kexec.c, arch/x86/kernel/kexec-bzimage64.c for what a loader
// owes the next kernel, kernel/liveupdate/kexec_handover.c: kho_populate
// for what it reads).

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// Scratch defaults: where the next kernel boots when the caller names no
// scratch area. 64 MiB at 64 MiB is ordinary RAM on any x86 machine of 1
// GiB or more and lies below the 256 MiB where handover regions usually
// sit; a kernel or a machine that needs more gets MinScratchSize.
const (
	DefaultScratchAddr = 0x4000000
	DefaultScratchSize = 64 << 20
	// scratchAlign is CONFIG_PHYSICAL_ALIGN's usual 2 MiB: KASLR places
	// the kernel at such a boundary inside scratch.
	scratchAlign = 2 << 20
	// scratchSlack is early boot's memblock use beyond the kernel image
	// and its struct pages (page tables, per-CPU areas, the log buffer).
	scratchSlack = 16 << 20
	// structPageSize is sizeof(struct page) on x86-64.
	structPageSize = 64
	// lowMem is the first MiB: BIOS data, the running kernel's real-mode
	// trampoline and u-root's purgatory; never scratch.
	lowMem = 1 << 20
)

// MinScratchSize is the least scratch a KHO kernel whose setup header says
// init_size needs on a machine with ramBytes of RAM: until KHO has read the
// radix tree, memblock allocates only from scratch, so scratch holds the
// decompressed kernel (KASLR puts it there), the struct page array of all
// RAM and early boot's other allocations.
func MinScratchSize(initSize, ramBytes uint64) uint64 {
	return alignUp(initSize, scratchAlign) + alignUp(ramBytes/physmem.PageSize*structPageSize, scratchAlign) + scratchSlack
}

// KHOLoadOptions is what LoadKHO hands the next kernel.
type KHOLoadOptions struct {
	// Kernel is the path of an x86-64 bzImage of a KHO kernel.
	Kernel string
	// Initrd is the next initramfs (read from offset 0), nil for none.
	Initrd *os.File
	// Cmdline is the next kernel's command line. A KHO kernel needs kho=on
	// (unless built with KEXEC_HANDOVER_ENABLE_DEFAULT) and no memmap= over
	// the handover: its preserved pages must be RAM to it.
	Cmdline string
	// FDT is the KHO root FDT: kho_data.fdt_addr and fdt_size.
	FDT physmem.Range
	// Scratch are the areas the next kernel boots in (struct kho_scratch);
	// nil picks DefaultScratch's.
	Scratch []physmem.Range
	// Reserved is the handover region and every preserved range outside
	// it: no segment lands there and no scratch area may overlap it. The
	// firmware memory map loaders read (/sys/firmware/memmap) predates
	// memmap=, so the region looks like free RAM unless listed here.
	Reserved []physmem.Range
}

// Segment is one kexec segment as LoadKHO laid it out.
type Segment struct {
	// Name says what it holds: kernel, initrd, cmdline, setup_data,
	// boot_params, purgatory.
	Name string
	// Phys is where it goes; Len is how much of it comes from user space
	// (the kernel zeroes the rest).
	Phys physmem.Range
	Len  int
}

func (s Segment) String() string {
	return fmt.Sprintf("%s %v (%d bytes)", s.Name, s.Phys, s.Len)
}

// KHOLayout is what LoadKHO loaded: the segments, the entry point (the
// purgatory's, which jumps to the kernel's 64-bit entry), the kernel's
// load address and the scratch areas in the setup_data entry.
type KHOLayout struct {
	Entry      uint64
	KernelAddr uint64
	SetupData  uint64
	Scratch    []physmem.Range
	Segments   []Segment
}

func (l *KHOLayout) String() string {
	var segs []string
	for _, s := range l.Segments {
		segs = append(segs, s.String())
	}
	var scratch []string
	for _, s := range l.Scratch {
		scratch = append(scratch, s.String())
	}
	return fmt.Sprintf("entry %#x, kernel at %#x, setup_data at %#x, scratch %s; segments: %s",
		l.Entry, l.KernelAddr, l.SetupData, strings.Join(scratch, " "), strings.Join(segs, ", "))
}

// KHOLoadError is a failed kexec_load: the entry point, every segment, the
// errno and what it means. errors.Is sees the errno.
type KHOLoadError struct {
	Kernel   string
	Entry    uint64
	Segments []Segment
	Errno    unix.Errno
	// Detail is what preflight finds on this machine; may be empty.
	Detail string
}

func (e *KHOLoadError) Error() string {
	var segs []string
	for _, s := range e.Segments {
		segs = append(segs, s.String())
	}
	s := fmt.Sprintf("SYS_kexec_load(kernel=%s, entry=%#x, %d segments: %s, flags=0) = %s (%v): %s",
		e.Kernel, e.Entry, len(e.Segments), strings.Join(segs, ", "), unix.ErrnoName(e.Errno), e.Errno, explainLoadErrno(e.Errno))
	if e.Detail != "" {
		s += "; here: " + e.Detail
	}
	return s
}

func (e *KHOLoadError) Unwrap() error { return e.Errno }

// explainLoadErrno says what an errno from kexec_load means (kernel/kexec.c,
// kernel/kexec_core.c: sanity_check_segment_list).
func explainLoadErrno(errno unix.Errno) string {
	switch errno {
	case unix.EPERM:
		return "refused before any segment is read: CAP_SYS_BOOT missing, kernel.kexec_load_disabled=1, kernel.kexec_load_limit_reboot used up, or kernel lockdown (kexec_load is forbidden under integrity and confidentiality lockdown whatever the image)"
	case unix.EBUSY:
		return "another kexec load or unload holds kexec_lock right now: retry"
	case unix.EINVAL:
		return "the segment list was refused: more than KEXEC_SEGMENT_MAX (16) segments, an unaligned or overlapping segment, a buffer larger than its memory size, or unknown flags"
	case unix.EADDRNOTAVAIL:
		return "a segment's destination lies beyond what the kernel can address (KEXEC_DESTINATION_MEMORY_LIMIT) or the entry point is not inside a segment"
	case unix.ENOMEM:
		return "the segments add up to more than half of the machine's free memory, or the kernel could not allocate pages to hold them"
	case unix.ENOSYS:
		return "the running kernel has no kexec_load: built without CONFIG_KEXEC, or a seccomp filter blocks the call"
	case unix.EFAULT:
		return "a segment buffer is not readable user memory"
	}
	return "no kexec_load-specific meaning known for this errno; see dmesg"
}

// ScratchProblem says why scratch cannot be the next kernel's scratch, in
// one line, or returns "" when it can. ram is the firmware's System RAM
// (what the next kernel's e820 table shows), owned what the running kernel
// keeps for itself (/proc/iomem's Reserved and Crash kernel entries), reserved
// the handover region and preserved ranges, need MinScratchSize's answer.
func ScratchProblem(scratch, ram, owned, reserved []physmem.Range, need uint64) string {
	if len(scratch) == 0 {
		return "no scratch area: the next kernel would have nowhere to boot"
	}
	var total uint64
	for i, s := range scratch {
		switch {
		case s.Size == 0 || s.Start+s.Size < s.Start:
			return fmt.Sprintf("scratch area %d %v is empty or wraps", i, s)
		case s.Start%physmem.PageSize != 0 || s.Size%physmem.PageSize != 0:
			return fmt.Sprintf("scratch area %d %v is not page aligned", i, s)
		case s.Overlaps(physmem.Range{Start: 0, Size: lowMem}):
			return fmt.Sprintf("scratch area %d %v overlaps the first MiB, which the running kernel, the BIOS and the purgatory own", i, s)
		}
		for j, o := range scratch[:i] {
			if s.Overlaps(o) {
				return fmt.Sprintf("scratch areas %d %v and %d %v overlap", j, o, i, s)
			}
		}
		for _, r := range reserved {
			if s.Overlaps(r) {
				return fmt.Sprintf("scratch area %d %v overlaps the handover or a preserved range %v: the next kernel would allocate over it before reading the radix tree", i, s, r)
			}
		}
		for _, r := range owned {
			if s.Overlaps(r) {
				return fmt.Sprintf("scratch area %d %v overlaps %v, which the running kernel reserves (/proc/iomem)", i, s, r)
			}
		}
		if !inOne(ram, s) {
			return fmt.Sprintf("scratch area %d %v is not wholly inside one System RAM range of the firmware memory map (%s)", i, s, rangeList(ram))
		}
		total += s.Size
	}
	if total < need {
		return fmt.Sprintf("scratch areas total %d MiB; the next kernel needs at least %d MiB (decompressed kernel, struct pages of all RAM, early allocations)", total>>20, need>>20)
	}
	return ""
}

// DefaultScratch returns one scratch area of max(DefaultScratchSize, need)
// at the lowest 2 MiB boundary from DefaultScratchAddr up that is System RAM
// and clear of owned and reserved, or an error saying why none fits.
func DefaultScratch(ram, owned, reserved []physmem.Range, need uint64) ([]physmem.Range, error) {
	size := alignUp(max(DefaultScratchSize, need), scratchAlign)
	avoid := slices.Concat(owned, reserved)
	for _, r := range sortedRanges(ram) {
		start := alignUp(max(r.Start, DefaultScratchAddr), scratchAlign)
		for start < r.End() && r.End()-start >= size {
			cand := physmem.Range{Start: start, Size: size}
			clash, ok := firstOverlap(avoid, cand)
			if !ok {
				return []physmem.Range{cand}, nil
			}
			start = alignUp(clash.End(), scratchAlign)
		}
	}
	return nil, fmt.Errorf("kexec: no %d MiB of System RAM from %#x up clear of the handover and the running kernel's reservations for the next kernel's scratch; pass scratch areas explicitly", size>>20, DefaultScratchAddr)
}

func firstOverlap(rs []physmem.Range, r physmem.Range) (physmem.Range, bool) {
	var best physmem.Range
	found := false
	for _, o := range rs {
		if o.Overlaps(r) && (!found || o.End() > best.End()) {
			best, found = o, true
		}
	}
	return best, found
}

func sortedRanges(rs []physmem.Range) []physmem.Range {
	out := slices.Clone(rs)
	slices.SortFunc(out, func(a, b physmem.Range) int { return cmp.Compare(a.Start, b.Start) })
	return out
}

// inOne reports whether r lies wholly inside one of rs.
func inOne(rs []physmem.Range, r physmem.Range) bool {
	for _, o := range rs {
		if o.Contains(r) {
			return true
		}
	}
	return false
}

func rangeList(rs []physmem.Range) string {
	var s []string
	for _, r := range rs {
		s = append(s, r.String())
	}
	return strings.Join(s, " ")
}

// OwnedByRunningKernel picks from /proc/iomem what the running kernel keeps
// for itself that the firmware map calls RAM: memmap= reservations
// (Reserved) and the crash kernel.
func OwnedByRunningKernel(entries []physmem.IOMemEntry) []physmem.Range {
	var out []physmem.Range
	for _, e := range entries {
		if e.Name == "Reserved" || e.Name == "reserved" || e.Name == "Crash kernel" {
			out = append(out, e.Range)
		}
	}
	return out
}

// khoSetupBlock is the one setup_data segment: a chain of one
// SETUP_KEXEC_KHO entry and, behind it, the struct kho_scratch array its
// kho_data points to. kho_populate reserves the array; the kernel keeps
// setup_data itself reserved.
func khoSetupBlock(base uint64, fdt physmem.Range, scratch []physmem.Range) ([]byte, error) {
	arrayOff := uint64(setupDataHeaderLen + khoDataLen)
	d, _ := KHOData{FDTAddr: fdt.Start, FDTSize: fdt.Size, ScratchAddr: base + arrayOff, ScratchSize: uint64(len(scratch)) * khoScratchLen}.MarshalBinary()
	b, err := EncodeSetupData(base, []SetupData{{Type: SetupKexecKHO, Data: d}})
	if err != nil {
		return nil, err
	}
	if uint64(len(b)) != arrayOff {
		return nil, fmt.Errorf("kexec: setup_data entry of %d bytes, want %d", len(b), arrayOff)
	}
	return append(b, EncodeScratch(scratch)...), nil
}

// setupHeader is what LoadKHO needs from a bzImage's setup header
// (Documentation/arch/x86/boot.rst).
type setupHeader struct {
	setupSects      int
	syssize         uint64 // protected-mode code, bytes
	kernelAlignment uint64
	prefAddress     uint64
	initSize        uint64
	cmdlineSize     uint64
	initrdAddrMax   uint64
	headerEnd       int // setup header bytes copied into boot_params: [0x1f1, headerEnd)
}

const (
	offSyssize         = 0x1f4
	offJump            = 0x200
	offInitrdAddrMax   = 0x22c
	offKernelAlignment = 0x230
	offPrefAddress     = 0x258
	offInitSize        = 0x260
	// bootParamsHdrEnd is where boot_params' setup header ends
	// (edd_mbr_sig_buffer starts at 0x290).
	bootParamsHdrEnd = 0x290
	// khoMinProtocol is boot protocol 2.10: init_size and pref_address,
	// which a loader of the compressed kernel needs.
	khoMinProtocol = 0x020a
)

// readSetupHeader checks an image for the kexec_load path and reads its
// header. The error is one line naming the image.
func readSetupHeader(path string, image []byte) (setupHeader, error) {
	if p := bzImage64Problem(image[:min(len(image), x86HeaderLen)], int64(len(image))); p != "" {
		return setupHeader{}, fmt.Errorf("kexec: next kernel %s %s: %w", path, p, ErrUnloadableImage)
	}
	le := binary.LittleEndian
	if v := le.Uint16(image[offVersion:]); v < khoMinProtocol {
		return setupHeader{}, fmt.Errorf("kexec: next kernel %s uses boot protocol %d.%02d; loading it compressed needs 2.10 (init_size): %w", path, v>>8, v&0xff, ErrUnloadableImage)
	}
	h := setupHeader{
		setupSects:      int(image[offSetupSects]),
		syssize:         uint64(le.Uint32(image[offSyssize:])) * 16,
		initrdAddrMax:   uint64(le.Uint32(image[offInitrdAddrMax:])),
		kernelAlignment: uint64(le.Uint32(image[offKernelAlignment:])),
		cmdlineSize:     uint64(le.Uint32(image[offCmdlineSize:])),
		prefAddress:     le.Uint64(image[offPrefAddress:]),
		initSize:        uint64(le.Uint32(image[offInitSize:])),
		headerEnd:       offJump + 2 + int(image[offJump+1]),
	}
	if h.setupSects == 0 {
		h.setupSects = 4
	}
	pm := int64(h.setupSects+1) * 512
	switch {
	case h.headerEnd > bootParamsHdrEnd:
		return setupHeader{}, fmt.Errorf("kexec: next kernel %s: its setup header claims to end at %#x, past boot_params' %#x: %w", path, h.headerEnd, bootParamsHdrEnd, ErrUnloadableImage)
	case h.kernelAlignment < physmem.PageSize || h.kernelAlignment&(h.kernelAlignment-1) != 0:
		return setupHeader{}, fmt.Errorf("kexec: next kernel %s: kernel_alignment %#x is not a power of two of at least a page: %w", path, h.kernelAlignment, ErrUnloadableImage)
	case h.syssize == 0 || pm+int64(h.syssize) > int64(len(image)):
		return setupHeader{}, fmt.Errorf("kexec: next kernel %s is truncated: syssize says %d bytes of protected-mode code after %d bytes of setup, the file has %d: %w", path, h.syssize, pm, len(image), ErrUnloadableImage)
	case h.initSize < h.syssize:
		return setupHeader{}, fmt.Errorf("kexec: next kernel %s: init_size %d is less than its %d bytes of code: %w", path, h.initSize, h.syssize, ErrUnloadableImage)
	}
	return h, nil
}

func alignUp(v, a uint64) uint64 { return (v + a - 1) &^ (a - 1) }

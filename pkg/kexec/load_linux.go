package kexec

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/u-root/u-root/pkg/boot/bzimage"
	ukexec "github.com/u-root/u-root/pkg/boot/kexec"
	"github.com/u-root/u-root/pkg/boot/purgatory"
	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// Files LoadKHO reads.
const (
	bootParamsPath = "/sys/kernel/boot_params/data"
	iomemPath      = "/proc/iomem"
)

const (
	// startup64 is the 64-bit entry point's offset in the protected-mode
	// code (XLF_KERNEL_64).
	startup64 = 0x200
	// loaderKexec is type_of_loader 0xD0, kexec's boot loader ID, as
	// kexec_file_load's bzImage loader sets it.
	loaderKexec = 0x0d << 4
	// Fields of struct boot_params outside the setup header that would
	// carry the running boot's values: ext_ramdisk_image, ext_ramdisk_size,
	// ext_cmd_line_ptr (the upper 32 bits of initrd and command line) and
	// sentinel.
	offExtRamdisk   = 0x0c0
	offExtCmdline   = 0x0c8
	offSentinel     = 0x1ef
	bootParamsBytes = 4096
	below4G         = 1 << 32
)

// LoadKHO loads opts.Kernel with kexec_load(2) so that it boots with the KHO
// handover opts.FDT: a fresh setup_data chain of one SETUP_KEXEC_KHO entry
// and its scratch array, the running boot's boot_params with the next
// kernel's own setup header, initrd and command line, and u-root's
// purgatory jumping to the 64-bit entry of the compressed kernel. The
// compressed kernel is loaded, not vmlinux: its decompressor applies KASLR,
// which in a KHO kernel places the kernel inside the scratch areas.
//
// The memory map is the firmware's (/sys/firmware/memmap), which does not
// show memmap=: opts.Reserved and the scratch areas become reservations, so
// no segment lands on the handover, a preserved page or scratch. Scratch is
// checked first (ScratchProblem), and a next kernel that is not a loadable
// bzImage is refused: both fail before anything is loaded. A failed
// syscall is a *KHOLoadError.
func LoadKHO(opts KHOLoadOptions) (*KHOLayout, time.Duration, error) {
	if opts.FDT.Size == 0 {
		return nil, 0, fmt.Errorf("kexec: no KHO root FDT to hand over")
	}
	p, err := planFromMachine(opts)
	if err != nil {
		return nil, 0, err
	}
	t0 := time.Now()
	err = ukexec.Load(uintptr(p.layout.Entry), p.mem.Segments, 0)
	took := time.Since(t0)
	if err == nil {
		return p.layout, took, nil
	}
	return nil, took, loadError(err, opts.Kernel, p.layout, "/")
}

// PlanKHO lays out what LoadKHO would load on this machine and loads
// nothing: the scratch, image and placement checks before a handover is
// written. A zero opts.FDT stands for a handover not written yet.
func PlanKHO(opts KHOLoadOptions) (*KHOLayout, error) {
	p, err := planFromMachine(opts)
	if err != nil {
		return nil, err
	}
	return p.layout, nil
}

// planFromMachine reads the kernel, the initrd and the machine's maps and
// lays out the load.
func planFromMachine(opts KHOLoadOptions) (*khoPlan, error) {
	image, err := os.ReadFile(opts.Kernel)
	if err != nil {
		return nil, fmt.Errorf("kexec: next kernel: %w", err)
	}
	var initrd []byte
	if opts.Initrd != nil {
		if initrd, err = io.ReadAll(io.NewSectionReader(opts.Initrd, 0, 1<<62)); err != nil {
			return nil, fmt.Errorf("kexec: read the next initramfs: %w", err)
		}
	}
	mm, err := ukexec.MemoryMapFromSysfsMemmap()
	if err != nil {
		return nil, fmt.Errorf("kexec: firmware memory map: %w", err)
	}
	iomem, err := physmem.ReadIOMem(iomemPath)
	if err != nil {
		return nil, fmt.Errorf("kexec: %w", err)
	}
	bp, err := os.ReadFile(bootParamsPath)
	if err != nil {
		return nil, fmt.Errorf("kexec: the running boot_params (CONFIG_X86 sysfs): %w", err)
	}
	return planKHO(image, initrd, bp, mm, OwnedByRunningKernel(iomem), opts)
}

// loadError turns kexec.Load's failure into a *KHOLoadError naming every
// segment of layout; an EPERM gets what preflight finds under root.
func loadError(err error, kernel string, layout *KHOLayout, root string) error {
	var ke ukexec.ErrKexec
	if !errors.As(err, &ke) {
		return fmt.Errorf("kexec: kexec_load of %s (%s): %w", kernel, layout, err)
	}
	le := &KHOLoadError{Kernel: kernel, Entry: layout.Entry, Segments: layout.Segments, Errno: ke.Errno}
	if ke.Errno == unix.EPERM {
		if problems, err := KHOLoadPreflight(root, kernel); err != nil {
			le.Detail = err.Error()
		} else if len(problems) > 0 {
			le.Detail = strings.Join(problems, "; ")
		}
	}
	return le
}

// khoPlan is a laid-out load: u-root's memory with its segments, and what
// went where.
type khoPlan struct {
	mem    *ukexec.Memory
	layout *KHOLayout
}

// planKHO lays out every segment of a LoadKHO without loading anything:
// image is the bzImage, bootParams the running boot's boot_params, mm the
// firmware memory map, owned what the running kernel reserves.
func planKHO(image, initrd, bootParams []byte, mm ukexec.MemoryMap, owned []physmem.Range, opts KHOLoadOptions) (*khoPlan, error) {
	hdr, err := readSetupHeader(opts.Kernel, image)
	if err != nil {
		return nil, err
	}
	if len(bootParams) != bootParamsBytes {
		return nil, fmt.Errorf("kexec: the running boot_params are %d bytes, want %d", len(bootParams), bootParamsBytes)
	}
	if uint64(len(opts.Cmdline)) > hdr.cmdlineSize {
		return nil, fmt.Errorf("kexec: the next command line is %d bytes; %s accepts at most %d (cmdline_size)", len(opts.Cmdline), opts.Kernel, hdr.cmdlineSize)
	}
	if opts.FDT != (physmem.Range{}) && !inOne(opts.Reserved, opts.FDT) {
		return nil, fmt.Errorf("kexec: the KHO root FDT %v is not inside a reserved range (%s): the loader could place a segment over it", opts.FDT, rangeList(opts.Reserved))
	}
	ram := fromRanges(mm.RAM())
	var ramBytes uint64
	for _, r := range ram {
		ramBytes += r.Size
	}
	need := MinScratchSize(hdr.initSize, ramBytes)
	scratch := opts.Scratch
	if scratch == nil {
		if scratch, err = DefaultScratch(ram, owned, opts.Reserved, need); err != nil {
			return nil, err
		}
	}
	if why := ScratchProblem(scratch, ram, owned, opts.Reserved, need); why != "" {
		return nil, fmt.Errorf("kexec: %s", why)
	}

	mm = append(ukexec.MemoryMap(nil), mm...)
	for _, r := range append(opts.Reserved, scratch...) {
		mm.Insert(ukexec.TypedRange{Range: toURange(r), Type: ukexec.RangeReserved})
	}
	kmem := &ukexec.Memory{Phys: mm}
	l := &KHOLayout{Scratch: scratch}
	add := func(name string, data []byte, r ukexec.Range) {
		kmem.Segments.Insert(ukexec.NewSegment(data, r))
		l.Segments = append(l.Segments, Segment{Name: name, Phys: fromRange(r), Len: len(data)})
	}
	low := func(limit uint64) ukexec.Range { return ukexec.RangeFromInterval(lowMem, uintptr(limit)) }

	// The compressed kernel: its memory is init_size, where the
	// decompressor runs (in place without KASLR), from pref_address up.
	pm := uint64(hdr.setupSects+1) * 512
	code := image[pm : pm+hdr.syssize]
	kr, err := kmem.AvailableRAM().FindSpace(uint(alignUp(hdr.initSize, physmem.PageSize)),
		ukexec.WithMinimumAddr(uintptr(hdr.prefAddress)), ukexec.WithStartAlignment(uint(hdr.kernelAlignment)))
	if err != nil {
		return nil, fmt.Errorf("kexec: place the %d MiB kernel (init_size) aligned to %#x from %#x up outside the reservations: %w", hdr.initSize>>20, hdr.kernelAlignment, hdr.prefAddress, err)
	}
	add("kernel", code, kr)
	l.KernelAddr = uint64(kr.Start)

	var initrdRange ukexec.Range
	if len(initrd) > 0 {
		if initrdRange, err = kmem.ReservePhys(uint(len(initrd)), low(min(hdr.initrdAddrMax+1, below4G))); err != nil {
			return nil, fmt.Errorf("kexec: place the %d-byte initrd below initrd_addr_max %#x outside the reservations: %w", len(initrd), hdr.initrdAddrMax, err)
		}
		add("initrd", initrd, initrdRange)
	}
	cmdline := append([]byte(opts.Cmdline), 0)
	cr, err := kmem.ReservePhys(uint(len(cmdline)), low(below4G))
	if err != nil {
		return nil, fmt.Errorf("kexec: place the command line: %w", err)
	}
	add("cmdline", cmdline, cr)

	sdLen := setupDataHeaderLen + khoDataLen + len(scratch)*khoScratchLen
	sr, err := kmem.ReservePhys(uint(sdLen), low(below4G))
	if err != nil {
		return nil, fmt.Errorf("kexec: place setup_data: %w", err)
	}
	sd, err := khoSetupBlock(uint64(sr.Start), opts.FDT, scratch)
	if err != nil {
		return nil, err
	}
	add("setup_data", sd, sr)
	l.SetupData = uint64(sr.Start)

	params, err := bootParamsFor(bootParams, image[:hdr.headerEnd], uint64(initrdRange.Start), uint64(len(initrd)), uint64(cr.Start), l.SetupData)
	if err != nil {
		return nil, err
	}
	br, err := kmem.ReservePhys(uint(len(params)), low(below4G))
	if err != nil {
		return nil, fmt.Errorf("kexec: place boot_params: %w", err)
	}
	add("boot_params", params, br)

	before := len(kmem.Segments)
	entry, err := purgatory.Load(kmem, kr.Start+startup64, br.Start)
	if err != nil {
		return nil, fmt.Errorf("kexec: place u-root's purgatory: %w", err)
	}
	for _, s := range kmem.Segments {
		if !slicesContainsRange(l.Segments, s.Phys) {
			l.Segments = append(l.Segments, Segment{Name: "purgatory", Phys: fromRange(s.Phys), Len: len(s.Buf)})
		}
	}
	if len(kmem.Segments) != before+1 {
		return nil, fmt.Errorf("kexec: u-root's purgatory added %d segments, want 1", len(kmem.Segments)-before)
	}
	l.Entry = uint64(entry)
	if err := checkLayout(l, ram, opts.Reserved); err != nil {
		return nil, err
	}
	return &khoPlan{mem: kmem, layout: l}, nil
}

// checkLayout proves what the memory map promised: every segment in
// firmware RAM, none on a reservation or a scratch area, none overlapping
// another.
func checkLayout(l *KHOLayout, ram, reserved []physmem.Range) error {
	for i, s := range l.Segments {
		if !inOne(ram, s.Phys) {
			return fmt.Errorf("kexec: segment %s is not in System RAM", s)
		}
		for _, r := range reserved {
			if s.Phys.Overlaps(r) {
				return fmt.Errorf("kexec: segment %s overlaps the reserved %v", s, r)
			}
		}
		for _, r := range l.Scratch {
			if s.Phys.Overlaps(r) {
				return fmt.Errorf("kexec: segment %s overlaps scratch %v", s, r)
			}
		}
		for _, o := range l.Segments[:i] {
			if s.Phys.Overlaps(o.Phys) {
				return fmt.Errorf("kexec: segments %s and %s overlap", o, s)
			}
		}
	}
	return nil
}

// bootParamsFor is the next kernel's boot_params: the running boot's
// (screen, EDD, the firmware's e820 table, which shows the handover as RAM)
// with the next kernel's setup header copied over it, as kexec_file_load's
// bzImage loader does, and the initrd, command line and setup_data of this
// load. The running boot's initrd, setup_data chain and 64-bit extensions
// are overwritten or cleared: they point at memory the next kernel must
// not trust.
func bootParamsFor(running, header []byte, initrdPA, initrdLen, cmdlinePA, setupData uint64) ([]byte, error) {
	b := append([]byte(nil), running...)
	copy(b[offSetupSects:len(header)], header[offSetupSects:])
	for i := offExtRamdisk; i < offExtCmdline+4; i++ {
		b[i] = 0
	}
	b[offSentinel] = 0
	var lp bzimage.LinuxParams
	if err := lp.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("kexec: decode boot_params: %w", err)
	}
	if initrdPA+initrdLen > below4G || cmdlinePA >= below4G {
		return nil, fmt.Errorf("kexec: initrd %#x+%#x or command line %#x above 4 GiB", initrdPA, initrdLen, cmdlinePA)
	}
	lp.LoaderType = loaderKexec
	lp.Initrdstart, lp.Initrdsize = uint32(initrdPA), uint32(initrdLen)
	lp.CLPtr = uint32(cmdlinePA)
	lp.SetupData = setupData
	enc, err := lp.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("kexec: encode boot_params: %w", err)
	}
	copy(b, enc)
	return b, nil
}

func slicesContainsRange(segs []Segment, r ukexec.Range) bool {
	for _, s := range segs {
		if s.Phys == fromRange(r) {
			return true
		}
	}
	return false
}

func toURange(r physmem.Range) ukexec.Range {
	return ukexec.Range{Start: uintptr(r.Start), Size: uint(r.Size)}
}

func fromRange(r ukexec.Range) physmem.Range {
	return physmem.Range{Start: uint64(r.Start), Size: uint64(r.Size)}
}

func fromRanges(rs ukexec.Ranges) []physmem.Range {
	out := make([]physmem.Range, 0, len(rs))
	for _, r := range rs {
		out = append(out, fromRange(r))
	}
	return out
}

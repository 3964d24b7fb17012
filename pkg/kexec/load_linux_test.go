package kexec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	ukexec "github.com/u-root/u-root/pkg/boot/kexec"
	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/pkg/physmem"
)

func guestMemoryMap() ukexec.MemoryMap {
	var mm ukexec.MemoryMap
	for _, r := range guestRAM {
		mm = append(mm, ukexec.TypedRange{Range: toURange(r), Type: ukexec.RangeRAM})
	}
	return mm
}

// runningBootParams is a running boot's boot_params carrying what must not
// reach the next kernel: its initrd, a setup_data chain, the 64-bit
// extensions, a sentinel, and an e820 entry that must.
func runningBootParams() []byte {
	bp := make([]byte, bootParamsBytes)
	le := binary.LittleEndian
	le.PutUint32(bp[0x218:], 0x3f000000) // ramdisk_image
	le.PutUint32(bp[0x21c:], 0x800000)   // ramdisk_size
	le.PutUint64(bp[0x250:], 0x9d000)    // setup_data
	le.PutUint32(bp[offExtRamdisk:], 1)
	le.PutUint32(bp[offExtCmdline:], 1)
	bp[offSentinel] = 0xff
	bp[0x1e8] = 1                     // e820_entries
	le.PutUint64(bp[0x2d0+8:], 1<<30) // e820_table[0].size
	le.PutUint32(bp[0x2d0+16:], 1)    // E820_TYPE_RAM
	return bp
}

func testOptions() KHOLoadOptions {
	return KHOLoadOptions{
		Kernel:   "vmlinuz",
		Cmdline:  "console=ttyS0 kho=on liveupdate=on",
		FDT:      physmem.Range{Start: handover.Start, Size: physmem.PageSize},
		Reserved: []physmem.Range{handover},
	}
}

// TestPlanKHO lays out a load of the compressed kernel and checks every
// segment against what the next kernel reads: the setup_data chain built
// afresh with kho_data and the scratch array, boot_params with the image's
// own setup header and this load's initrd and command line, the kernel at
// an aligned address from pref_address, the purgatory jumping to its
// 64-bit entry with boot_params in RSI, and nothing on the handover or
// the scratch.
func TestPlanKHO(t *testing.T) {
	img := testBzImage(t)
	initrd := bytes.Repeat([]byte("initrd"), 1000)
	running := runningBootParams()
	p, err := planKHO(img, initrd, running, guestMemoryMap(), nil, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	l := p.layout
	t.Log(l)
	seg := map[string]Segment{}
	var names []string
	for _, s := range l.Segments {
		seg[s.Name] = s
		names = append(names, s.Name)
	}
	if got := strings.Join(names, " "); got != "kernel initrd cmdline setup_data boot_params purgatory" {
		t.Fatalf("segments %s", got)
	}
	if len(p.mem.Segments) != len(l.Segments) {
		t.Fatalf("%d u-root segments, %d named", len(p.mem.Segments), len(l.Segments))
	}
	buf := func(name string) []byte {
		return p.mem.Segments.GetPhys(toURange(physmem.Range{Start: seg[name].Phys.Start, Size: uint64(seg[name].Len)}))
	}
	le := binary.LittleEndian

	scratch := physmem.Range{Start: DefaultScratchAddr, Size: 84 * mib}
	if len(l.Scratch) != 1 || l.Scratch[0] != scratch {
		t.Errorf("scratch %v, want the default grown to Debian 6.1's need, %v", l.Scratch, scratch)
	}
	for _, s := range l.Segments {
		if s.Phys.Overlaps(handover) || s.Phys.Overlaps(scratch) {
			t.Errorf("segment %s lies on the handover or the scratch", s)
		}
	}

	k := seg["kernel"]
	if k.Phys.Start%0x200000 != 0 || k.Phys.Start < 0x1000000 || k.Phys.Size != 0x3378000 || k.Len != 4096 {
		t.Errorf("kernel %s: want 2 MiB aligned from 16 MiB, init_size long, the 4096 bytes of code", k)
	}
	if !bytes.Equal(buf("kernel"), img[40*512:]) {
		t.Error("the kernel segment is not the protected-mode code")
	}

	chain, err := ParseSetupData(buf("setup_data"), l.SetupData, l.SetupData)
	if err != nil || len(chain) != 1 {
		t.Fatalf("setup_data chain %v, %v", chain, err)
	}
	d, err := FindKHOData(chain)
	if err != nil || d.FDTAddr != handover.Start || d.FDTSize != physmem.PageSize || d.ScratchSize != 16 {
		t.Fatalf("kho_data %+v, %v", d, err)
	}
	sd := buf("setup_data")
	arr, err := DecodeScratch(sd[d.ScratchAddr-l.SetupData:])
	if err != nil || arr[0] != scratch {
		t.Errorf("scratch array %v, %v", arr, err)
	}

	bp := buf("boot_params")
	if len(bp) != bootParamsBytes {
		t.Fatalf("boot_params of %d bytes", len(bp))
	}
	for _, f := range []struct {
		name      string
		off, size int
		want      uint64
	}{
		{"setup_data", 0x250, 8, l.SetupData},
		{"ramdisk_image", 0x218, 4, seg["initrd"].Phys.Start},
		{"ramdisk_size", 0x21c, 4, uint64(len(initrd))},
		{"cmd_line_ptr", 0x228, 4, seg["cmdline"].Phys.Start},
		{"type_of_loader", 0x210, 1, loaderKexec},
		{"ext_ramdisk_image", offExtRamdisk, 4, 0},
		{"ext_cmd_line_ptr", offExtCmdline, 4, 0},
		{"sentinel", offSentinel, 1, 0},
		{"e820_entries", 0x1e8, 1, 1},
		{"e820_table[0].size", 0x2d8, 8, 1 << 30},
		{"init_size", offInitSize, 4, 0x3378000},
		{"kernel_alignment", offKernelAlignment, 4, 0x200000},
		{"cmdline_size", offCmdlineSize, 4, 2047},
	} {
		var got uint64
		switch f.size {
		case 1:
			got = uint64(bp[f.off])
		case 4:
			got = uint64(le.Uint32(bp[f.off:]))
		case 8:
			got = le.Uint64(bp[f.off:])
		}
		if got != f.want {
			t.Errorf("boot_params %s = %#x, want %#x", f.name, got, f.want)
		}
	}
	if string(bp[offHdrS:offHdrS+4]) != "HdrS" {
		t.Error("boot_params lacks the image's setup header")
	}
	if got := buf("cmdline"); string(got) != testOptions().Cmdline+"\x00" {
		t.Errorf("cmdline segment %q", got)
	}
	if !bytes.Equal(buf("initrd"), initrd) {
		t.Error("initrd segment differs")
	}

	pg := buf("purgatory")
	if l.Entry < seg["purgatory"].Phys.Start || l.Entry >= seg["purgatory"].Phys.End() {
		t.Errorf("entry %#x outside the purgatory %s", l.Entry, seg["purgatory"])
	}
	if le.Uint64(pg[8:]) != k.Phys.Start+startup64 || le.Uint64(pg[16:]) != seg["boot_params"].Phys.Start {
		t.Errorf("purgatory jumps to %#x with RSI %#x; want the kernel's 64-bit entry %#x and boot_params %#x",
			le.Uint64(pg[8:]), le.Uint64(pg[16:]), k.Phys.Start+startup64, seg["boot_params"].Phys.Start)
	}
	if bytes.Equal(running, runningBootParams()) == false {
		t.Error("planKHO changed the running boot_params it was given")
	}
}

// TestPlanKHORefuses: every bad set-up is one line and nothing is laid out.
func TestPlanKHORefuses(t *testing.T) {
	img := testBzImage(t)
	tests := []struct {
		name   string
		img    []byte
		modify func(o *KHOLoadOptions)
		owned  []physmem.Range
		want   string
	}{
		{"scratch on the region", img, func(o *KHOLoadOptions) { o.Scratch = []physmem.Range{{Start: 0xc000000, Size: 128 * mib}} }, nil, "overlaps the handover"},
		{"scratch on a preserved page", img, func(o *KHOLoadOptions) {
			o.Reserved = append(o.Reserved, physmem.Range{Start: 0x5000000, Size: physmem.PageSize})
			o.Scratch = []physmem.Range{{Start: 0x4000000, Size: 128 * mib}}
		}, nil, "overlaps the handover or a preserved range [0x5000000-0x5000fff]"},
		{"scratch on the running kernel's", img, func(o *KHOLoadOptions) { o.Scratch = []physmem.Range{{Start: 0x20000000, Size: 128 * mib}} },
			[]physmem.Range{{Start: 0x24000000, Size: mib}}, "which the running kernel reserves"},
		{"scratch too small", img, func(o *KHOLoadOptions) { o.Scratch = []physmem.Range{{Start: 0x4000000, Size: 64 * mib}} }, nil, "needs at least 84 MiB"},
		{"not a bzImage", append([]byte("\x7fELF"), make([]byte, 8192)...), nil, nil, "is not an x86 bzImage"},
		{"FDT outside the reservations", img, func(o *KHOLoadOptions) { o.FDT.Start = 0x30000000 }, nil, "not inside a reserved range"},
		{"command line too long", img, func(o *KHOLoadOptions) { o.Cmdline = strings.Repeat("x", 2048) }, nil, "accepts at most 2047"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := testOptions()
			if tt.modify != nil {
				tt.modify(&o)
			}
			p, err := planKHO(tt.img, nil, runningBootParams(), guestMemoryMap(), tt.owned, o)
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") || p != nil {
				t.Errorf("got %v, want one line saying %q", err, tt.want)
			}
		})
	}
}

// TestPlanKHOAvoidsPreserved: preserved ranges outside the region, where
// first fit would put the initrd, the command line and the kernel, push
// every segment elsewhere; the firmware map alone would not.
func TestPlanKHOAvoidsPreserved(t *testing.T) {
	o := testOptions()
	preserved := []physmem.Range{{Start: 0x100000, Size: 2 * mib}, {Start: 0x9400000, Size: physmem.PageSize}, {Start: 0x20000000, Size: 64 * mib}}
	o.Reserved = append(o.Reserved, preserved...)
	p, err := planKHO(testBzImage(t), make([]byte, 3*mib), runningBootParams(), guestMemoryMap(), nil, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range p.layout.Segments {
		for _, r := range o.Reserved {
			if s.Phys.Overlaps(r) {
				t.Errorf("segment %s lies on the reserved %v", s, r)
			}
		}
	}
	t.Log(p.layout)
}

func BenchmarkPlanKHO(b *testing.B) {
	setup := testBzImageB(b)
	initrd := make([]byte, 8*mib)
	bp := runningBootParams()
	mm := guestMemoryMap()
	for b.Loop() {
		if _, err := planKHO(setup, initrd, bp, mm, nil, testOptions()); err != nil {
			b.Fatal(err)
		}
	}
}

// TestKHOLoadErrorFromKexec: u-root's ErrKexec becomes a *KHOLoadError with every named
// segment and, for EPERM, what preflight finds; other failures keep their
// text and the layout.
func TestKHOLoadErrorFromKexec(t *testing.T) {
	p, err := planKHO(testBzImage(t), nil, runningBootParams(), guestMemoryMap(), nil, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	root := writeTree(t, map[string]string{loadDisabledPath: "1\n", statusPath: capEffRoot})
	got := loadError(ukexec.ErrKexec{Entry: 0x3000, Errno: unix.EPERM}, "/kernels/next", p.layout, root)
	var le *KHOLoadError
	if !errors.As(got, &le) || !errors.Is(got, unix.EPERM) {
		t.Fatalf("%v: want a *KHOLoadError for EPERM", got)
	}
	msg := got.Error()
	for _, s := range p.layout.Segments {
		if !strings.Contains(msg, s.String()) {
			t.Errorf("%q does not name segment %s", msg, s)
		}
	}
	if !strings.Contains(msg, "here: kernel.kexec_load_disabled=1") || !strings.Contains(msg, "/kernels/next") {
		t.Errorf("%q lacks the preflight finding or the kernel", msg)
	}
	other := loadError(errors.New("entry point 0x3000 is not contained by any segment"), "/kernels/next", p.layout, root)
	if errors.As(other, &le) || !strings.Contains(other.Error(), "not contained") || !strings.Contains(other.Error(), "purgatory [0x3000") {
		t.Errorf("a non-syscall failure: %v", other)
	}
}

// TestPlanKHOBeforeTheHandover: with no root FDT yet, the layout and its
// checks still run, so a bad set-up is refused before anything is written;
// and a load without an initrd clears the running boot's.
func TestPlanKHOBeforeTheHandover(t *testing.T) {
	o := testOptions()
	o.FDT = physmem.Range{}
	p, err := planKHO(testBzImage(t), nil, runningBootParams(), guestMemoryMap(), nil, o)
	if err != nil {
		t.Fatalf("planning before the handover is written: %v", err)
	}
	// Without an initrd the running boot's is cleared, not inherited.
	for _, s := range p.layout.Segments {
		if s.Name == "boot_params" {
			bp := p.mem.Segments.GetPhys(toURange(physmem.Range{Start: s.Phys.Start, Size: bootParamsBytes}))
			if im, sz := binary.LittleEndian.Uint32(bp[0x218:]), binary.LittleEndian.Uint32(bp[0x21c:]); im != 0 || sz != 0 {
				t.Errorf("no initrd, but boot_params say ramdisk %#x+%#x", im, sz)
			}
		}
		if s.Name == "initrd" {
			t.Errorf("an initrd segment without an initrd: %s", s)
		}
	}
	o.Scratch = []physmem.Range{{Start: 0xc000000, Size: 128 * mib}}
	if _, err := planKHO(testBzImage(t), nil, runningBootParams(), guestMemoryMap(), nil, o); err == nil || !strings.Contains(err.Error(), "overlaps the handover") {
		t.Errorf("scratch on the region before the handover is written: %v", err)
	}
}

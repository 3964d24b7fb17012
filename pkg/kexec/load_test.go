package kexec

import (
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/pkg/physmem"
)

const mib = 1 << 20

// guestRAM is QEMU's firmware map of a 1 GiB q35/pc guest: RAM below the
// EBDA and from 1 MiB to 1 GiB.
var guestRAM = []physmem.Range{{Start: 0, Size: 0x9fc00}, {Start: 0x100000, Size: 1<<30 - 0x100000}}

var handover = physmem.Range{Start: 0x10000000, Size: 16 * mib}

// TestScratchProblem is the scratch rule: ordinary RAM, away from the
// handover, the preserved pages and what the running kernel owns, big
// enough for the next kernel's early boot. Each bad set-up is one line.
func TestScratchProblem(t *testing.T) {
	owned := []physmem.Range{{Start: 0x30000000, Size: 128 * mib}} // a crash kernel
	preserved := physmem.Range{Start: 0x20000000, Size: 2 * mib}   // a preserved block outside the region
	reserved := []physmem.Range{handover, preserved}
	need := MinScratchSize(8*mib, 1<<30)
	tests := []struct {
		name    string
		scratch []physmem.Range
		want    string // "" for acceptable
	}{
		{"the default", []physmem.Range{{Start: DefaultScratchAddr, Size: DefaultScratchSize}}, ""},
		{"two areas adding up", []physmem.Range{{Start: 0x4000000, Size: 32 * mib}, {Start: 0x8000000, Size: 32 * mib}}, ""},
		{"none", nil, "no scratch area"},
		{"overlaps the handover region", []physmem.Range{{Start: 0xc000000, Size: 128 * mib}}, "overlaps the handover or a preserved range [0x10000000-0x10ffffff]"},
		{"overlaps a preserved page", []physmem.Range{{Start: 0x1e000000, Size: 64 * mib}}, "overlaps the handover or a preserved range [0x20000000-0x201fffff]"},
		{"overlaps the crash kernel", []physmem.Range{{Start: 0x2e000000, Size: 64 * mib}}, "which the running kernel reserves"},
		{"in the first MiB", []physmem.Range{{Start: 0, Size: 64 * mib}}, "overlaps the first MiB"},
		{"beyond RAM", []physmem.Range{{Start: 0x3c000000, Size: 128 * mib}}, "not wholly inside one System RAM range"},
		{"too small", []physmem.Range{{Start: 0x4000000, Size: 16 * mib}}, "scratch areas total 16 MiB; the next kernel needs at least 40 MiB"},
		{"overlapping areas", []physmem.Range{{Start: 0x4000000, Size: 64 * mib}, {Start: 0x6000000, Size: 64 * mib}}, "scratch areas 0 [0x4000000-0x7ffffff] and 1 [0x6000000-0x9ffffff] overlap"},
		{"unaligned", []physmem.Range{{Start: 0x4000800, Size: 64 * mib}}, "not page aligned"},
		{"empty", []physmem.Range{{Start: 0x4000000}}, "empty or wraps"},
		{"wraps", []physmem.Range{{Start: ^uint64(0) - 4095, Size: 8192}}, "empty or wraps"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ScratchProblem(tt.scratch, guestRAM, owned, reserved, need)
			switch {
			case tt.want == "" && got != "":
				t.Errorf("refused: %s", got)
			case tt.want != "" && !strings.Contains(got, tt.want):
				t.Errorf("got %q, want it to say %q", got, tt.want)
			case strings.Contains(got, "\n"):
				t.Errorf("more than one line: %q", got)
			}
		})
	}
}

// TestMinScratchSize: the decompressed kernel and the struct pages of all
// RAM, each rounded to 2 MiB, plus 16 MiB of early allocations. The
// prototype's 64 MiB for a 1 GiB guest and the 7.2 kernel is enough.
func TestMinScratchSize(t *testing.T) {
	if got := MinScratchSize(8*mib+1, 1<<30); got != 10*mib+16*mib+16*mib {
		t.Errorf("MinScratchSize(8 MiB+1, 1 GiB) = %d MiB", got>>20)
	}
	// Debian 6.1's init_size (51.5 MiB) on 1 GiB outgrows the default.
	if got := MinScratchSize(0x3378000, 1<<30); got != 84*mib {
		t.Errorf("MinScratchSize(Debian 6.1, 1 GiB) = %d MiB, want 84", got>>20)
	}
}

// TestDefaultScratch: 64 MiB at 64 MiB when free, moved past whatever is
// in the way, grown to what the kernel needs, and an error when nothing
// fits.
func TestDefaultScratch(t *testing.T) {
	tests := []struct {
		name     string
		ram      []physmem.Range
		reserved []physmem.Range
		need     uint64
		want     physmem.Range
		err      bool
	}{
		{"free", guestRAM, []physmem.Range{handover}, 40 * mib, physmem.Range{Start: 0x4000000, Size: 64 * mib}, false},
		{"the handover is at 64 MiB", guestRAM, []physmem.Range{{Start: 0x4000000, Size: 16 * mib}}, 40 * mib, physmem.Range{Start: 0x5000000, Size: 64 * mib}, false},
		{"a big kernel", guestRAM, []physmem.Range{handover}, 99 * mib, physmem.Range{Start: 0x4000000, Size: 100 * mib}, false},
		{"a bigger kernel", guestRAM, []physmem.Range{handover}, 199 * mib, physmem.Range{Start: 0x11000000, Size: 200 * mib}, false},
		{"RAM starting late", []physmem.Range{{Start: 0x4100000, Size: 1 << 30}}, nil, 0, physmem.Range{Start: 0x4200000, Size: 64 * mib}, false},
		{"no room", []physmem.Range{{Start: 0x100000, Size: 96 * mib}}, nil, 0, physmem.Range{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DefaultScratch(tt.ram, nil, tt.reserved, tt.need)
			if tt.err {
				if err == nil {
					t.Fatalf("got %v, want an error", got)
				}
				return
			}
			if err != nil || len(got) != 1 || got[0] != tt.want {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
			if why := ScratchProblem(got, tt.ram, nil, tt.reserved, tt.need); why != "" {
				t.Errorf("the default is refused: %s", why)
			}
		})
	}
}

// TestKHOLoadErrorText: a failed kexec_load names the kernel, the entry,
// every segment and the errno with its meaning, and unwraps to the errno.
func TestKHOLoadErrorText(t *testing.T) {
	e := &KHOLoadError{Kernel: "/kernels/next", Entry: 0x3000, Errno: unix.EPERM, Detail: "kernel.kexec_load_disabled=1",
		Segments: []Segment{{Name: "kernel", Phys: physmem.Range{Start: 0x1000000, Size: 0x2000000}, Len: 0x120000}, {Name: "purgatory", Phys: physmem.Range{Start: 0x3000, Size: 0x1000}, Len: 0x1000}}}
	s := e.Error()
	for _, want := range []string{"SYS_kexec_load(kernel=/kernels/next, entry=0x3000, 2 segments: kernel [0x1000000-0x2ffffff] (1179648 bytes), purgatory [0x3000-0x3fff] (4096 bytes)",
		"= EPERM (operation not permitted): ", "lockdown", "here: kernel.kexec_load_disabled=1"} {
		if !strings.Contains(s, want) {
			t.Errorf("%q lacks %q", s, want)
		}
	}
	if !errors.Is(e, unix.EPERM) {
		t.Error("does not unwrap to EPERM")
	}
	for _, errno := range []unix.Errno{unix.EBUSY, unix.EINVAL, unix.EADDRNOTAVAIL, unix.ENOMEM, unix.ENOSYS, unix.EFAULT} {
		if strings.Contains(explainLoadErrno(errno), "no kexec_load-specific meaning") {
			t.Errorf("%v has no explanation", errno)
		}
	}
}

// testBzImage is Debian 6.1's real setup sectors with syssize cut down to
// a page of stand-in protected-mode code behind them.
func testBzImage(t *testing.T) []byte {
	t.Helper()
	return testBzImageB(t)
}

func testBzImageB(t testing.TB) []byte {
	t.Helper()
	setup, err := os.ReadFile(realSetup)
	if err != nil {
		t.Fatal(err)
	}
	img := append(setup, make([]byte, 4096)...)
	binary.LittleEndian.PutUint32(img[offSyssize:], 4096/16)
	for i := range 4096 {
		img[len(setup)+i] = byte(i)
	}
	return img
}

// TestReadSetupHeader reads the fields the compressed-kernel load uses and
// refuses what it cannot boot, naming the image.
func TestReadSetupHeader(t *testing.T) {
	img := testBzImage(t)
	h, err := readSetupHeader("vmlinuz", img)
	if err != nil {
		t.Fatal(err)
	}
	if h.setupSects != 39 || h.syssize != 4096 || h.kernelAlignment != 0x200000 || h.prefAddress != 0x1000000 ||
		h.initSize != 0x3378000 || h.headerEnd != 0x26c || h.cmdlineSize != 2047 || h.initrdAddrMax != 0x7fffffff {
		t.Fatalf("header %+v", h)
	}
	mutate := func(f func(b []byte)) []byte {
		b := append([]byte(nil), img...)
		f(b)
		return b
	}
	tests := []struct {
		name string
		img  []byte
		want string
	}{
		{"an ELF vmlinux", append([]byte("\x7fELF"), make([]byte, 4096)...), "not an x86 bzImage"},
		{"too short", []byte("MZ"), "too short"},
		{"truncated code", img[:len(img)-1], "truncated"},
		{"protocol 2.09", mutate(func(b []byte) { binary.LittleEndian.PutUint16(b[offVersion:], 0x0209) }), "kexec_file_load needs 2.12"},
		{"odd alignment", mutate(func(b []byte) { binary.LittleEndian.PutUint32(b[offKernelAlignment:], 0x3000) }), "kernel_alignment 0x3000"},
		{"header past boot_params", mutate(func(b []byte) { b[offJump+1] = 0xff }), "past boot_params"},
		{"init_size below the code", mutate(func(b []byte) { binary.LittleEndian.PutUint32(b[offInitSize:], 16) }), "init_size 16"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readSetupHeader("vmlinuz", tt.img)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "vmlinuz") || !errors.Is(err, ErrUnloadableImage) {
				t.Errorf("got %v, want it to name vmlinuz and say %q", err, tt.want)
			}
		})
	}
}

// FuzzReadSetupHeader: any image is refused with an error or gives a
// header whose code, setup header and alignment are within bounds, so that
// planKHO's slicing cannot panic.
func FuzzReadSetupHeader(f *testing.F) {
	img, err := os.ReadFile(realSetup)
	if err != nil {
		f.Fatal(err)
	}
	small := append(img, make([]byte, 4096)...)
	binary.LittleEndian.PutUint32(small[offSyssize:], 4096/16)
	f.Add(small)
	f.Add(img)
	f.Add([]byte("MZ"))
	f.Fuzz(func(t *testing.T, image []byte) {
		h, err := readSetupHeader("fuzz", image)
		if err != nil {
			return
		}
		pm := uint64(h.setupSects+1) * 512
		if pm+h.syssize > uint64(len(image)) || h.headerEnd > bootParamsHdrEnd || h.headerEnd > len(image) ||
			h.kernelAlignment&(h.kernelAlignment-1) != 0 || h.initSize < h.syssize {
			t.Fatalf("accepted header out of bounds: %+v for %d bytes", h, len(image))
		}
	})
}

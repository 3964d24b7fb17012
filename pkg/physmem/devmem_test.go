package physmem

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestOpenDevMemErrors(t *testing.T) {
	iomem := writeFile(t, "iomem", readTestdata(t, "iomem-qemu.txt"))
	hidden := writeFile(t, "iomem-hidden", "00000000-00000000 : Reserved\n00000000-00000000 : System RAM\n")
	reserved := Range{0x10000000, 16 << 20}
	dir := t.TempDir()
	tests := []struct {
		name     string
		spec     DevMemSpec
		want     []error
		mentions string
	}{
		{"unaligned", DevMemSpec{Range: Range{0x10000800, 4096}, IOMem: iomem}, []error{unix.EINVAL}, "page aligned"},
		{"empty", DevMemSpec{Range: Range{0x10000000, 0}, IOMem: iomem}, []error{unix.EINVAL}, "non-zero"},
		{"no iomem", DevMemSpec{Range: reserved, IOMem: filepath.Join(dir, "nope")}, []error{os.ErrNotExist}, "memory map"},
		{"non-root iomem", DevMemSpec{Range: reserved, IOMem: hidden}, []error{ErrIOMemHidden}, "run as root"},
		{"system ram", DevMemSpec{Range: Range{0x1000000, 16 << 20}, IOMem: iomem}, []error{ErrNotReserved}, "memmap=16M$0x1000000"},
		{"straddles ram", DevMemSpec{Range: Range{0x10000000, 17 << 20}, IOMem: iomem}, []error{ErrNotReserved}, "System RAM"},
		{"no dev mem", DevMemSpec{Range: reserved, IOMem: iomem, DevMem: filepath.Join(dir, "mem")},
			[]error{ErrNoDevMem, unix.ENOENT}, "CONFIG_DEVMEM"},
		{"dev mem is dir", DevMemSpec{Range: reserved, IOMem: iomem, DevMem: dir}, []error{unix.EISDIR}, dir},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := OpenDevMem(tt.spec)
			if err == nil {
				r.Close()
				t.Fatal("OpenDevMem succeeded")
			}
			if r != nil {
				t.Errorf("non-nil region with error %v", err)
			}
			for _, w := range tt.want {
				if !errors.Is(err, w) {
					t.Errorf("error %q is not %v", err, w)
				}
			}
			if !strings.Contains(err.Error(), tt.mentions) {
				t.Errorf("error %q does not mention %q", err, tt.mentions)
			}
		})
	}
}

// A sparse regular file stands in for /dev/mem: offset = physical address.
func TestOpenDevMemFakeFile(t *testing.T) {
	rg := Range{0x10000000, 16 << 20}
	devmem := filepath.Join(t.TempDir(), "mem")
	if err := os.WriteFile(devmem, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(devmem, int64(rg.End())); err != nil {
		t.Fatal(err)
	}
	r, err := OpenDevMem(DevMemSpec{Range: rg, DevMem: devmem, IOMem: writeFile(t, "iomem", readTestdata(t, "iomem-qemu.txt"))})
	if err != nil {
		t.Fatal(err)
	}
	if r.Base() != rg.Start || r.Size() != rg.Size {
		t.Errorf("region %v, want %v", r.Range(), rg)
	}
	b, err := r.Bytes(rg.Start+PageSize, 5)
	if err != nil {
		t.Fatal(err)
	}
	copy(b, "hello")
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(devmem)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := make([]byte, 5)
	if _, err := f.ReadAt(got, int64(rg.Start+PageSize)); err != nil || string(got) != "hello" {
		t.Errorf("file at %#x = %q, %v; want hello", rg.Start+PageSize, got, err)
	}
}

func TestExplainDenied(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, lockdown string // lockdown "" means unreadable
		mentions       string
	}{
		{"integrity", "none [integrity] confidentiality\n", "integrity mode"},
		{"confidentiality", "none integrity [confidentiality]\n", "confidentiality mode"},
		{"off", "[none] integrity confidentiality\n", "lockdown is off"},
		{"unreadable", "", "unreadable"},
		{"garbled", "what\n", "mode unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := DevMemSpec{Range: Range{0x10000000, 16 << 20}, Lockdown: filepath.Join(dir, "missing")}
			if tt.lockdown != "" {
				spec.Lockdown = writeFile(t, "lockdown", tt.lockdown)
			}
			spec = spec.withDefaults()
			for _, errno := range []unix.Errno{unix.EPERM, unix.EACCES} {
				open := explainOpen(spec, errno)
				mmap := explainMmap(spec, errno)
				for _, err := range []error{open, mmap} {
					if !errors.Is(err, ErrDevMemDenied) || !errors.Is(err, errno) {
						t.Errorf("%q: not ErrDevMemDenied and %v", err, errno)
					}
					if !strings.Contains(err.Error(), tt.mentions) {
						t.Errorf("%q does not mention %q", err, tt.mentions)
					}
				}
				if !strings.Contains(open.Error(), "CAP_SYS_RAWIO") {
					t.Errorf("%q does not mention CAP_SYS_RAWIO", open)
				}
				if !strings.Contains(mmap.Error(), "STRICT_DEVMEM") || !strings.Contains(mmap.Error(), "offset 0x10000000") {
					t.Errorf("%q does not mention STRICT_DEVMEM and the offset", mmap)
				}
			}
		})
	}
	if err := explainMmap(DevMemSpec{}, unix.EINVAL); !errors.Is(err, unix.EINVAL) || errors.Is(err, ErrDevMemDenied) {
		t.Errorf("EINVAL explained as %q", err)
	}
}

// On a machine whose /proc/iomem shows real addresses, OpenDevMem must refuse
// System RAM before it ever opens /dev/mem (DevMem points nowhere to be sure).
func TestOpenDevMemRefusesHostRAM(t *testing.T) {
	f, err := os.Open("/proc/iomem")
	if err != nil {
		t.Skip(err)
	}
	entries, err := ParseIOMem(f)
	f.Close()
	if err != nil {
		t.Skipf("/proc/iomem: %v", err)
	}
	for _, e := range entries {
		start := (e.Start + PageSize - 1) &^ (PageSize - 1)
		if e.Name != "System RAM" || e.End()-start < PageSize || e.End() < start {
			continue
		}
		_, err := OpenDevMem(DevMemSpec{Range: Range{start, PageSize}, DevMem: filepath.Join(t.TempDir(), "none")})
		if !errors.Is(err, ErrNotReserved) {
			t.Fatalf("OpenDevMem of System RAM at %#x: %v, want ErrNotReserved", start, err)
		}
		return
	}
	t.Skip("no System RAM page in /proc/iomem")
}

// TestOpenDevMemReal maps a memmap=-reserved range through the real /dev/mem.
// It runs only when KHO_SIM_DEVMEM_TEST=SIZE@ADDR names such a range (inside
// a QEMU guest booted with memmap=SIZE$ADDR). It restores the contents.
func TestOpenDevMemReal(t *testing.T) {
	spec := os.Getenv("KHO_SIM_DEVMEM_TEST")
	if spec == "" {
		t.Skip("set KHO_SIM_DEVMEM_TEST=SIZE@ADDR on a machine booted with memmap=SIZE$ADDR")
	}
	rg, err := ParseRegion(spec)
	if err != nil {
		t.Fatal(err)
	}
	if cmdline, err := os.ReadFile("/proc/cmdline"); err == nil {
		got, found, err := MemmapFromCmdline(string(cmdline))
		if err != nil || !found || !got.Contains(rg) {
			t.Errorf("/proc/cmdline %q reserves %v (found %v, %v), want it to cover %v", cmdline, got, found, err, rg)
		}
	}
	r, err := OpenDevMem(DevMemSpec{Range: rg})
	if err != nil {
		t.Fatal(err)
	}
	mem, err := r.Bytes(rg.Start, rg.Size)
	if err != nil {
		t.Fatal(err)
	}
	saved := bytes.Clone(mem)
	for i := range mem {
		mem[i] = byte(i*7 + i>>12)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r, err = OpenDevMem(DevMemSpec{Range: rg})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	mem, _ = r.Bytes(rg.Start, rg.Size)
	for i := range mem {
		if mem[i] != byte(i*7+i>>12) {
			t.Fatalf("byte at %#x = %#x after remap, want %#x", rg.Start+uint64(i), mem[i], byte(i*7+i>>12))
		}
	}
	copy(mem, saved)
	_, err = OpenDevMem(DevMemSpec{Range: Range{rg.Start, rg.Size + PageSize}})
	t.Logf("one page past the reservation: %v", err)
}

package physmem

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readTestdata(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// testdata/iomem-qemu.txt is /proc/iomem of Debian's 6.1 cloud kernel in
// qemu-system-x86_64 -m 1G booted with memmap=16M$0x10000000;
// iomem-nonroot.txt is the same file as a user without CAP_SYS_ADMIN sees it.
func qemuIOMem(t testing.TB) []IOMemEntry {
	t.Helper()
	entries, err := ParseIOMem(strings.NewReader(readTestdata(t, "iomem-qemu.txt")))
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

func TestParseIOMemQEMU(t *testing.T) {
	entries := qemuIOMem(t)
	if len(entries) != 29 {
		t.Errorf("%d entries, want 29", len(entries))
	}
	want := map[int]IOMemEntry{
		0:  {Range{0, 0x1000}, "Reserved", 0},
		8:  {Range{0xf0000, 0x10000}, "System ROM", 1},
		10: {Range{0x10000000, 0x1000000}, "Reserved", 0},
		11: {Range{0x11000000, 0x3ffe0000 - 0x11000000}, "System RAM", 0},
		12: {Range{0x2b600000, 0x2c401ef2 - 0x2b600000}, "Kernel code", 1},
		28: {Range{0xfd00000000, 0x300000000}, "Reserved", 0},
	}
	for i, w := range want {
		if i >= len(entries) || entries[i] != w {
			t.Errorf("entry %d = %+v, want %+v", i, entries[min(i, len(entries)-1)], w)
		}
	}
}

func TestParseIOMemNonRoot(t *testing.T) {
	entries, err := ParseIOMem(strings.NewReader(readTestdata(t, "iomem-nonroot.txt")))
	if !errors.Is(err, ErrIOMemHidden) || entries != nil {
		t.Fatalf("ParseIOMem(non-root) = %v, %v; want ErrIOMemHidden", entries, err)
	}
	if !strings.Contains(err.Error(), "run as root") {
		t.Errorf("error %q does not say to run as root", err)
	}
	if err := CheckReserved([]IOMemEntry{{Range{0, 1}, "Reserved", 0}}, Range{0x10000000, 4096}); !errors.Is(err, ErrIOMemHidden) {
		t.Errorf("CheckReserved(zeros) = %v, want ErrIOMemHidden", err)
	}
}

func TestParseIOMemLines(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []IOMemEntry
		wantErr bool
	}{
		{"empty", "", nil, false},
		{"blank lines", "\n00001000-00001fff : A\n\n", []IOMemEntry{{Range{0x1000, 0x1000}, "A", 0}}, false},
		{"nesting", "00000000-0000ffff : A\n  00001000-00001fff : B\n    00001000-000010ff : C : D\n",
			[]IOMemEntry{{Range{0, 0x10000}, "A", 0}, {Range{0x1000, 0x1000}, "B", 1}, {Range{0x1000, 0x100}, "C : D", 2}}, false},
		{"single byte", "00000010-00000010 : X\n", []IOMemEntry{{Range{0x10, 1}, "X", 0}}, false},
		{"top of space", "ffffffffffff0000-ffffffffffffffff : X\n", []IOMemEntry{{Range{0xffffffffffff0000, 0x10000}, "X", 0}}, false},
		{"whole space", "0000000000000000-ffffffffffffffff : X\n", []IOMemEntry{{Range{0, 0xffffffffffffffff}, "X", 0}}, false},
		{"no name", "00001000-00001fff\n", nil, true},
		{"no dash", "00001000 : A\n", nil, true},
		{"bad hex", "0000g000-00001fff : A\n", nil, true},
		{"signed", "+1000-1fff : A\n", nil, true},
		{"reversed", "00002000-00001fff : A\n", nil, true},
		{"too big", "10000000000000000-10000000000000001 : A\n", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseIOMem(strings.NewReader(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error %v", err, tt.wantErr)
			}
			if err != nil && got != nil {
				t.Errorf("entries %v with error", got)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("entry %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestCheckReserved(t *testing.T) {
	entries := qemuIOMem(t)
	tests := []struct {
		name     string
		want     Range
		ok       bool
		mentions []string
	}{
		{"whole memmap region", Range{0x10000000, 16 << 20}, true, nil},
		{"inside", Range{0x10400000, 4 << 20}, true, nil},
		{"last page", Range{0x10fff000, 4096}, true, nil},
		{"other reserved", Range{0x3ffe0000, 0x20000}, true, nil},
		{"straddles ram above", Range{0x10000000, 17 << 20}, false,
			[]string{"System RAM [0x11000000-0x3ffdffff]", "memmap=17M$0x10000000", "quote the $"}},
		{"straddles ram below", Range{0xfff000, 2 << 20}, false, []string{"System RAM [0x100000-0xfffffff]"}},
		{"inside system ram", Range{0x1000000, 16 << 20}, false, []string{"System RAM", "memmap=16M$0x1000000"}},
		{"kernel code", Range{0x2b600000, 4096}, false, []string{"System RAM"}},
		{"reserved with a ROM child", Range{0xf0000, 4096}, true, nil},
		{"reserved and video rom", Range{0xc0000, 0x40000}, false, []string{"[0xf0000-0xfffff] Reserved", "Video ROM"}},
		{"pci hole", Range{0x50000000, 4096}, false, []string{"PCI Bus 0000:00"}},
		{"two reserved entries", Range{0xfffc0000, 0x100000000}, false, []string{"Reserved", "PCI Bus"}},
		{"uncovered", Range{0x200000000, 4096}, false, []string{"nothing in /proc/iomem covers it"}},
		{"empty range", Range{0x10000000, 0}, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckReserved(entries, tt.want)
			if tt.ok {
				if err != nil {
					t.Fatalf("CheckReserved(%v) = %v", tt.want, err)
				}
				return
			}
			if !errors.Is(err, ErrNotReserved) {
				t.Fatalf("CheckReserved(%v) = %v, want ErrNotReserved", tt.want, err)
			}
			for _, m := range tt.mentions {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
		})
	}
	// A System RAM child anywhere in a Reserved entry disqualifies it.
	nested := []IOMemEntry{{Range{0, 1 << 30}, "Reserved", 0}, {Range{1 << 20, 1 << 20}, "System RAM", 2}}
	if err := CheckReserved(nested, Range{0, 4 << 20}); !errors.Is(err, ErrNotReserved) {
		t.Errorf("CheckReserved over nested System RAM = %v", err)
	}
	if err := CheckReserved(nested, Range{4 << 20, 4 << 20}); err != nil {
		t.Errorf("CheckReserved beside nested System RAM = %v", err)
	}
}

func FuzzParseIOMem(f *testing.F) {
	f.Add(readTestdata(f, "iomem-qemu.txt"))
	f.Add("00000000-00000000 : System RAM\n")
	f.Fuzz(func(t *testing.T, in string) {
		entries, err := ParseIOMem(strings.NewReader(in))
		if err != nil {
			if entries != nil {
				t.Fatalf("entries with error %v", err)
			}
			return
		}
		for _, e := range entries {
			if e.Size == 0 || e.End() != 0 && e.End() < e.Start || e.Depth < 0 {
				t.Fatalf("bad entry %+v", e)
			}
		}
		_ = CheckReserved(entries, Range{0x10000000, 16 << 20})
	})
}

// SystemRAM lists the top-level System RAM of QEMU's 1 GiB guest, around
// the memmap= region; ReadIOMem names the file in its errors.
func TestSystemRAM(t *testing.T) {
	ram, err := SystemRAM(qemuIOMem(t))
	want := []Range{{0x1000, 0x9fc00 - 0x1000}, {0x100000, 0x10000000 - 0x100000}, {0x11000000, 0x3ffe0000 - 0x11000000}}
	if err != nil || len(ram) != len(want) {
		t.Fatalf("SystemRAM = %v, %v; want %v", ram, err, want)
	}
	for i := range want {
		if ram[i] != want[i] {
			t.Errorf("range %d = %v, want %v", i, ram[i], want[i])
		}
	}
	if _, err := SystemRAM([]IOMemEntry{{Range{0, 1}, "System RAM", 0}}); !errors.Is(err, ErrIOMemHidden) {
		t.Errorf("SystemRAM(zeros) = %v, want ErrIOMemHidden", err)
	}
	bad := filepath.Join(t.TempDir(), "iomem")
	if err := os.WriteFile(bad, []byte("not a memory map\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadIOMem(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("ReadIOMem(bad) = %v, want an error naming the file", err)
	}
}

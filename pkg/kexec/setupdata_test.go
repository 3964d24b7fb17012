package kexec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// TestKHODataLayout checks packed struct kho_data field by field
// (arch/x86/include/uapi/asm/setup_data.h): fdt_addr, fdt_size,
// scratch_addr, scratch_size, little endian, 32 bytes.
func TestKHODataLayout(t *testing.T) {
	d := KHOData{FDTAddr: 0x10000000, FDTSize: 0x1000, ScratchAddr: 0x123450, ScratchSize: 32}
	b, err := d.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 32)
	for i, v := range []uint64{0x10000000, 0x1000, 0x123450, 32} {
		binary.LittleEndian.PutUint64(want[i*8:], v)
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("kho_data = %x, want %x", b, want)
	}
	var back KHOData
	if err := back.UnmarshalBinary(b); err != nil || back != d {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	if err := back.UnmarshalBinary(b[:31]); !errors.Is(err, unix.EINVAL) {
		t.Errorf("a 31-byte kho_data: %v, want EINVAL (add_kho takes only sizeof(struct kho_data))", err)
	}
}

// TestScratchArray checks struct kho_scratch {addr, size} entries and that
// kho_populate's scratch_size must be a whole number of them.
func TestScratchArray(t *testing.T) {
	areas := []physmem.Range{{Start: 0x4000000, Size: 64 << 20}, {Start: 0x40000000, Size: 2 << 20}}
	b := EncodeScratch(areas)
	if len(b) != 32 || binary.LittleEndian.Uint64(b[16:]) != 0x40000000 || binary.LittleEndian.Uint64(b[8:]) != 64<<20 {
		t.Fatalf("scratch array %x", b)
	}
	back, err := DecodeScratch(b)
	if err != nil || len(back) != 2 || back[0] != areas[0] || back[1] != areas[1] {
		t.Fatalf("round trip %v, %v", back, err)
	}
	for _, n := range []int{0, 8, 17} {
		if _, err := DecodeScratch(make([]byte, n)); !errors.Is(err, unix.EINVAL) {
			t.Errorf("%d bytes: %v, want EINVAL", n, err)
		}
	}
}

// TestSetupDataChain checks struct setup_data {u64 next; u32 type; u32 len;
// data}: entries 8-byte aligned, next the physical address of the
// following entry, 0 at the end, and that the parser walks it back.
func TestSetupDataChain(t *testing.T) {
	const base = 0x200000
	entries := []SetupData{{Type: 1, Data: []byte{1, 2, 3}}, {Type: SetupKexecKHO, Data: make([]byte, 32)}, {Type: 7}}
	b, err := EncodeSetupData(base, entries)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	// Entry 0: 16 + 3 bytes, padded to 24; entry 1 at base+24: 16 + 32.
	if le.Uint64(b[0:]) != base+24 || le.Uint32(b[8:]) != 1 || le.Uint32(b[12:]) != 3 {
		t.Errorf("entry 0 header %x", b[:16])
	}
	if le.Uint64(b[24:]) != base+24+48 || le.Uint32(b[32:]) != SetupKexecKHO || le.Uint32(b[36:]) != 32 {
		t.Errorf("entry 1 header %x", b[24:40])
	}
	if le.Uint64(b[72:]) != 0 || len(b) != 72+16 {
		t.Errorf("last entry: next %#x, chain %d bytes", le.Uint64(b[72:]), len(b))
	}
	got, err := ParseSetupData(b, base, base)
	if err != nil || len(got) != 3 {
		t.Fatalf("parse: %v, %v", got, err)
	}
	for i := range entries {
		if got[i].Type != entries[i].Type || !bytes.Equal(got[i].Data, entries[i].Data) {
			t.Errorf("entry %d: %+v, want %+v", i, got[i], entries[i])
		}
	}
	if _, err := FindKHOData(got); err != nil {
		t.Errorf("FindKHOData: %v", err)
	}
	if _, err := FindKHOData(got[:1]); !errors.Is(err, ErrNoKHOData) {
		t.Errorf("a chain without type 10: %v, want ErrNoKHOData", err)
	}
	if _, err := EncodeSetupData(base+4, entries); !errors.Is(err, unix.EINVAL) {
		t.Errorf("unaligned base: %v, want EINVAL", err)
	}
}

// TestParseSetupDataHostile feeds chains that point outside the buffer,
// claim too much payload or loop: each is an error, never a panic.
func TestParseSetupDataHostile(t *testing.T) {
	const base = 0x1000
	le := binary.LittleEndian
	entry := func(next uint64, typ, n uint32) []byte {
		b := make([]byte, 16)
		le.PutUint64(b, next)
		le.PutUint32(b[8:], typ)
		le.PutUint32(b[12:], n)
		return b
	}
	tests := []struct {
		name  string
		mem   []byte
		first uint64
		want  unix.Errno
	}{
		{"first below the buffer", entry(0, 1, 0), base - 8, unix.EFAULT},
		{"first past the end", entry(0, 1, 0), base + 16, unix.EFAULT},
		{"header cut short", entry(0, 1, 0)[:15], base, unix.EFAULT},
		{"len beyond the buffer", entry(0, 1, 1), base, unix.EFAULT},
		{"len near 4 GiB", entry(0, 1, 0xffffffff), base, unix.EFAULT},
		{"loop to itself", entry(base, 1, 0), base, unix.ELOOP},
		{"next at the top of the address space", entry(^uint64(0)-3, 1, 0), base, unix.EFAULT},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseSetupData(tt.mem, base, tt.first); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
	// A chain of 65 distinct entries is refused: the walk is bounded.
	var long []SetupData
	for range maxSetupData + 1 {
		long = append(long, SetupData{Type: 1})
	}
	b, err := EncodeSetupData(base, long)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseSetupData(b, base, base); !errors.Is(err, unix.ELOOP) {
		t.Errorf("65 entries: %v, want ELOOP", err)
	}
}

// TestKHOSetupBlock checks the one setup_data segment: a type 10 entry
// whose kho_data points at the scratch array right behind it.
func TestKHOSetupBlock(t *testing.T) {
	const base = 0x7000000
	fdt := physmem.Range{Start: 0x10000000, Size: 0x1000}
	scratch := []physmem.Range{{Start: 0x4000000, Size: 64 << 20}}
	b, err := khoSetupBlock(base, fdt, scratch)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := ParseSetupData(b, base, base)
	if err != nil || len(chain) != 1 {
		t.Fatalf("chain %v, %v", chain, err)
	}
	d, err := FindKHOData(chain)
	if err != nil {
		t.Fatal(err)
	}
	if d.FDTAddr != fdt.Start || d.FDTSize != fdt.Size || d.ScratchAddr != base+48 || d.ScratchSize != 16 {
		t.Fatalf("kho_data %+v", d)
	}
	arr, err := DecodeScratch(b[d.ScratchAddr-base : d.ScratchAddr-base+d.ScratchSize])
	if err != nil || len(arr) != 1 || arr[0] != scratch[0] {
		t.Fatalf("scratch array %v, %v", arr, err)
	}
}

// FuzzParseSetupData: any bytes and pointers give entries inside the
// buffer or an error, and a chain EncodeSetupData wrote parses back.
func FuzzParseSetupData(f *testing.F) {
	b, _ := khoSetupBlock(0x1000, physmem.Range{Start: 0x10000000, Size: 0x1000}, []physmem.Range{{Start: 0x4000000, Size: 64 << 20}})
	f.Add(b, uint64(0x1000), uint64(0x1000))
	f.Add([]byte{}, uint64(0), uint64(1))
	f.Fuzz(func(t *testing.T, mem []byte, base, first uint64) {
		chain, err := ParseSetupData(mem, base, first)
		if err != nil {
			return
		}
		if len(chain) > maxSetupData {
			t.Fatalf("%d entries", len(chain))
		}
		for _, e := range chain {
			if len(e.Data) > len(mem) {
				t.Fatalf("entry of %d bytes from %d", len(e.Data), len(mem))
			}
		}
		if d, err := FindKHOData(chain); err == nil {
			if _, err := d.MarshalBinary(); err != nil {
				t.Fatal(err)
			}
		}
		if len(chain) == 0 {
			return
		}
		const base2 = 0x1000
		again, err := EncodeSetupData(base2, chain)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseSetupData(again, base2, base2)
		if err != nil || len(back) != len(chain) {
			t.Fatalf("re-encoded chain: %d entries, %v; want %d", len(back), err, len(chain))
		}
		for i := range chain {
			if back[i].Type != chain[i].Type || !bytes.Equal(back[i].Data, chain[i].Data) {
				t.Fatalf("entry %d differs after re-encoding", i)
			}
		}
	})
}

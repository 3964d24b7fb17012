package kexec

// The x86 boot protocol's setup_data chain (arch/x86/include/uapi/asm/setup_data.h,
// Documentation/arch/x86/boot.rst) and the KHO entry a KHO kernel reads from it
// (arch/x86/kernel/setup.c: parse_setup_data, add_kho; kernel/liveupdate/
// kexec_handover.c: kho_populate).

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// SetupKexecKHO is SETUP_KEXEC_KHO, the setup_data type of struct kho_data.
const SetupKexecKHO = 10

const (
	// setupDataHeaderLen is struct setup_data without its payload:
	// {u64 next; u32 type; u32 len}.
	setupDataHeaderLen = 16
	// khoDataLen is packed struct kho_data: {u64 fdt_addr, fdt_size,
	// scratch_addr, scratch_size}.
	khoDataLen = 32
	// khoScratchLen is struct kho_scratch: {phys_addr_t addr, size}.
	khoScratchLen = 16
	// maxSetupData bounds a parsed chain: the kernel has a dozen types and a
	// loop in untrusted memory must end.
	maxSetupData = 64
)

// SetupData is one entry of the chain: its type and payload.
type SetupData struct {
	Type uint32
	Data []byte
}

// KHOData is struct kho_data, the payload of a SETUP_KEXEC_KHO entry: where
// the KHO root FDT lies and where the array of struct kho_scratch lies.
type KHOData struct {
	FDTAddr, FDTSize         uint64
	ScratchAddr, ScratchSize uint64
}

// MarshalBinary encodes the packed little-endian struct kho_data.
func (d KHOData) MarshalBinary() ([]byte, error) {
	b := make([]byte, khoDataLen)
	le := binary.LittleEndian
	le.PutUint64(b[0:], d.FDTAddr)
	le.PutUint64(b[8:], d.FDTSize)
	le.PutUint64(b[16:], d.ScratchAddr)
	le.PutUint64(b[24:], d.ScratchSize)
	return b, nil
}

// UnmarshalBinary decodes struct kho_data; the payload must be exactly its size,
// as add_kho only accepts sizeof(struct kho_data).
func (d *KHOData) UnmarshalBinary(b []byte) error {
	if len(b) != khoDataLen {
		return fmt.Errorf("kexec: struct kho_data is %d bytes, got %d: %w", khoDataLen, len(b), unix.EINVAL)
	}
	le := binary.LittleEndian
	*d = KHOData{le.Uint64(b[0:]), le.Uint64(b[8:]), le.Uint64(b[16:]), le.Uint64(b[24:])}
	return nil
}

// EncodeScratch encodes the struct kho_scratch array kho_data.scratch_addr
// points to.
func EncodeScratch(areas []physmem.Range) []byte {
	b := make([]byte, 0, len(areas)*khoScratchLen)
	for _, a := range areas {
		b = binary.LittleEndian.AppendUint64(b, a.Start)
		b = binary.LittleEndian.AppendUint64(b, a.Size)
	}
	return b
}

// DecodeScratch decodes a struct kho_scratch array; its length must be a
// multiple of the entry size, as kho_populate divides scratch_size by it.
func DecodeScratch(b []byte) ([]physmem.Range, error) {
	if len(b) == 0 || len(b)%khoScratchLen != 0 {
		return nil, fmt.Errorf("kexec: a struct kho_scratch array of %d bytes: want a non-zero multiple of %d: %w", len(b), khoScratchLen, unix.EINVAL)
	}
	out := make([]physmem.Range, 0, len(b)/khoScratchLen)
	for off := 0; off < len(b); off += khoScratchLen {
		out = append(out, physmem.Range{Start: binary.LittleEndian.Uint64(b[off:]), Size: binary.LittleEndian.Uint64(b[off+8:])})
	}
	return out, nil
}

// EncodeSetupData lays out a fresh setup_data chain of entries in one buffer
// that will sit at physical address base: each entry starts 8-byte aligned
// and its next field holds the physical address of the following one, the
// last 0. The result goes in boot_params.hdr.setup_data as base.
func EncodeSetupData(base uint64, entries []SetupData) ([]byte, error) {
	if base%8 != 0 {
		return nil, fmt.Errorf("kexec: setup_data at %#x: want 8-byte alignment: %w", base, unix.EINVAL)
	}
	var b []byte
	for i, e := range entries {
		if uint64(len(e.Data)) > 1<<32-1 {
			return nil, fmt.Errorf("kexec: setup_data entry %d (type %d): %d bytes do not fit its u32 len: %w", i, e.Type, len(e.Data), unix.E2BIG)
		}
		start := len(b)
		b = append(b, make([]byte, setupDataHeaderLen)...)
		b = append(b, e.Data...)
		b = append(b, make([]byte, (8-len(b)%8)%8)...)
		var next uint64
		if i < len(entries)-1 {
			next = base + uint64(len(b))
		}
		binary.LittleEndian.PutUint64(b[start:], next)
		binary.LittleEndian.PutUint32(b[start+8:], e.Type)
		binary.LittleEndian.PutUint32(b[start+12:], uint32(len(e.Data)))
	}
	return b, nil
}

// ParseSetupData walks a setup_data chain that starts at physical address
// first, reading memory through the buffer mem that holds [base,
// base+len(mem)): the boot_params.hdr.setup_data chain of a boot, read back
// or as EncodeSetupData laid it out. Every pointer and length is checked:
// an entry outside mem, a loop, or more than 64 entries is an error.
func ParseSetupData(mem []byte, base, first uint64) ([]SetupData, error) {
	var out []SetupData
	seen := map[uint64]bool{}
	for pa := first; pa != 0; {
		if len(out) == maxSetupData {
			return nil, fmt.Errorf("kexec: setup_data chain longer than %d entries: %w", maxSetupData, unix.ELOOP)
		}
		if seen[pa] {
			return nil, fmt.Errorf("kexec: setup_data chain loops back to %#x: %w", pa, unix.ELOOP)
		}
		seen[pa] = true
		off, ok := offsetIn(mem, base, pa, setupDataHeaderLen)
		if !ok {
			return nil, fmt.Errorf("kexec: setup_data header at %#x lies outside [%#x, %#x): %w", pa, base, base+uint64(len(mem)), unix.EFAULT)
		}
		le := binary.LittleEndian
		next, typ, n := le.Uint64(mem[off:]), le.Uint32(mem[off+8:]), uint64(le.Uint32(mem[off+12:]))
		data, ok := offsetIn(mem, base, pa+setupDataHeaderLen, n)
		if !ok {
			return nil, fmt.Errorf("kexec: setup_data entry at %#x (type %d) claims %d bytes beyond [%#x, %#x): %w", pa, typ, n, base, base+uint64(len(mem)), unix.EFAULT)
		}
		out = append(out, SetupData{Type: typ, Data: mem[data : data+n : data+n]})
		pa = next
	}
	return out, nil
}

// offsetIn returns pa's offset in mem (which starts at base) when all of
// [pa, pa+n) lies in mem. It never overflows.
func offsetIn(mem []byte, base, pa, n uint64) (uint64, bool) {
	if pa < base {
		return 0, false
	}
	off := pa - base
	size := uint64(len(mem))
	if off > size || n > size-off {
		return 0, false
	}
	return off, true
}

// FindKHOData returns the SETUP_KEXEC_KHO entry of a chain: the KHO kernel's
// add_kho takes the first one and ignores the rest.
func FindKHOData(chain []SetupData) (KHOData, error) {
	for _, e := range chain {
		if e.Type == SetupKexecKHO {
			var d KHOData
			err := d.UnmarshalBinary(e.Data)
			return d, err
		}
	}
	return KHOData{}, ErrNoKHOData
}

// ErrNoKHOData means a setup_data chain holds no SETUP_KEXEC_KHO entry: the
// kernel it was given boots without a handover.
var ErrNoKHOData = errors.New("kexec: no SETUP_KEXEC_KHO entry in the setup_data chain")

// Package payload writes and verifies the data that kho-sim's simulated
// subsystems hand over: a 64-byte header followed by deterministic content
// whose CRC-32 the header records. Content is derived from a seed, so the
// next boot can recompute it without trusting anything the previous boot
// wrote.
package payload

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/fnv"
)

// HeaderSize is the size of the header in front of every payload.
const HeaderSize = 64

// magic marks a kho-sim payload header.
var magic = [8]byte{'K', 'H', 'O', 'S', 'I', 'M', 'P', 'L'}

// Header layout: magic[8], u64 size, u64 seed, u32 crc32, u32 reserved,
// char name[32] (NUL-padded, at most 31 bytes).
const nameLen = 32

// Seed derives a payload seed from a name and the boot that preserved it.
func Seed(name string, boot int) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64() ^ uint64(boot)*0x9e3779b97f4a7c15
}

// Fill writes the deterministic content for seed into dst (xorshift64*).
func Fill(dst []byte, seed uint64) {
	x := seed | 1
	i := 0
	for ; i+8 <= len(dst); i += 8 {
		x ^= x >> 12
		x ^= x << 25
		x ^= x >> 27
		binary.LittleEndian.PutUint64(dst[i:], x*0x2545f4914f6cdd1d)
	}
	if i < len(dst) {
		var tail [8]byte
		x ^= x >> 12
		x ^= x << 25
		x ^= x >> 27
		binary.LittleEndian.PutUint64(tail[:], x*0x2545f4914f6cdd1d)
		copy(dst[i:], tail[:])
	}
}

// Info describes a payload.
type Info struct {
	Name string
	Size uint64
	Seed uint64
	CRC  uint32
}

// Write lays a payload for info into mem (which must hold HeaderSize +
// info.Size bytes), fills its content from the seed and returns info with
// the CRC set.
func Write(mem []byte, info Info) (Info, error) {
	if uint64(len(mem)) < HeaderSize+info.Size {
		return info, fmt.Errorf("payload %q: %d bytes do not hold %d", info.Name, len(mem), HeaderSize+info.Size)
	}
	if len(info.Name) >= nameLen {
		return info, fmt.Errorf("payload name %q longer than %d bytes", info.Name, nameLen-1)
	}
	body := mem[HeaderSize : HeaderSize+info.Size]
	Fill(body, info.Seed)
	info.CRC = Checksum(body)
	h := mem[:HeaderSize]
	clear(h)
	copy(h, magic[:])
	binary.LittleEndian.PutUint64(h[8:], info.Size)
	binary.LittleEndian.PutUint64(h[16:], info.Seed)
	binary.LittleEndian.PutUint32(h[24:], info.CRC)
	copy(h[32:], info.Name)
	return info, nil
}

// ReadHeader decodes a header from untrusted memory.
func ReadHeader(h []byte) (Info, error) {
	if len(h) < HeaderSize {
		return Info{}, fmt.Errorf("payload header: %d bytes, want %d", len(h), HeaderSize)
	}
	if !bytes.Equal(h[:8], magic[:]) {
		return Info{}, fmt.Errorf("payload header: bad magic % x", h[:8])
	}
	name := h[32:HeaderSize]
	n := bytes.IndexByte(name, 0)
	if n < 0 {
		return Info{}, fmt.Errorf("payload header: name not NUL-terminated")
	}
	return Info{
		Name: string(name[:n]),
		Size: binary.LittleEndian.Uint64(h[8:]),
		Seed: binary.LittleEndian.Uint64(h[16:]),
		CRC:  binary.LittleEndian.Uint32(h[24:]),
	}, nil
}

// Verify checks a payload body against what was expected: the header's
// claims must match want, and the body's CRC-32 must match both. It does
// not regenerate the content from the seed: the CRC is the check, so a
// body rewritten together with both CRCs would pass.
func Verify(got Info, body []byte, want Info) error {
	if got.Name != want.Name || got.Size != want.Size || got.Seed != want.Seed || got.CRC != want.CRC {
		return fmt.Errorf("payload header says %+v, expected %+v", got, want)
	}
	if uint64(len(body)) != want.Size {
		return fmt.Errorf("payload %q: body %d bytes, want %d", want.Name, len(body), want.Size)
	}
	if crc := Checksum(body); crc != want.CRC {
		return fmt.Errorf("payload %q: CRC-32 %#08x, preserved %#08x", want.Name, crc, want.CRC)
	}
	return nil
}

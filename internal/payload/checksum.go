package payload

import (
	"hash/crc32"
	"runtime"
	"sync"
)

// castagnoli is the reflected CRC32C polynomial (crc32.Castagnoli).
const castagnoli = 0x82f63b78

// parallelPart is the least each goroutine of Checksum takes: below two
// of these one core is faster than starting a second.
const parallelPart = 512 << 10

// Checksum is CRC32C of b. A large b is split over the CPUs Go may use and
// the parts' CRCs combined: payload verification at boot is one CRC over
// every preserved byte, and one core's CRC32C falls behind a copy of the
// same bytes (see the README's "Payload verification beside memcpy").
func Checksum(b []byte) uint32 {
	t := table()
	parts := min(runtime.GOMAXPROCS(0), len(b)/parallelPart)
	if parts < 2 {
		return crc32.Checksum(b, t)
	}
	// Parts of whole cache lines, the last one taking the rest.
	size := len(b) / parts &^ 63
	crcs := make([]uint32, parts)
	var wg sync.WaitGroup
	for i := range parts {
		lo, hi := i*size, (i+1)*size
		if i == parts-1 {
			hi = len(b)
		}
		wg.Go(func() { crcs[i] = crc32.Checksum(b[lo:hi], t) })
	}
	wg.Wait()
	crc := crcs[0]
	for i := 1; i < parts; i++ {
		n := size
		if i == parts-1 {
			n = len(b) - i*size
		}
		crc = combine(crc, crcs[i], int64(n))
	}
	return crc
}

// combine is the CRC32C of A followed by B from crcA, crcB and B's length
// (zlib's crc32_combine: appending n zero bytes is a linear map on the CRC,
// applied by repeated squaring of the one-zero-bit matrix). The standard
// library has no combine.
func combine(crcA, crcB uint32, n int64) uint32 {
	if n <= 0 {
		return crcA
	}
	var even, odd [32]uint32
	odd[0] = castagnoli
	for i, row := 1, uint32(1); i < 32; i, row = i+1, row<<1 {
		odd[i] = row
	}
	square(&even, &odd) // two zero bits
	square(&odd, &even) // four
	for {
		// Each round squares the operator: 8, 16, 32, ... zero bits.
		square(&even, &odd)
		if n&1 != 0 {
			crcA = times(&even, crcA)
		}
		if n >>= 1; n == 0 {
			break
		}
		square(&odd, &even)
		if n&1 != 0 {
			crcA = times(&odd, crcA)
		}
		if n >>= 1; n == 0 {
			break
		}
	}
	return crcA ^ crcB
}

func times(m *[32]uint32, v uint32) uint32 {
	var sum uint32
	for i := 0; v != 0; i, v = i+1, v>>1 {
		if v&1 != 0 {
			sum ^= m[i]
		}
	}
	return sum
}

func square(dst, m *[32]uint32) {
	for i := range 32 {
		dst[i] = times(m, m[i])
	}
}

package payload

import (
	"fmt"
	"hash/crc32"
	"strings"
	"testing"
	"time"
)

func TestWriteVerify(t *testing.T) {
	for _, size := range []uint64{0, 1, 7, 8, 9, 4096, 65536 + 3} {
		mem := make([]byte, HeaderSize+size)
		info, err := Write(mem, Info{Name: "iommu-core", Size: size, Seed: Seed("iommu-core", 1)})
		if err != nil {
			t.Fatal(err)
		}
		got, err := ReadHeader(mem)
		if err != nil {
			t.Fatal(err)
		}
		if err := Verify(got, mem[HeaderSize:], info); err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
	}
}

func TestVerifyCatches(t *testing.T) {
	const size = 4096
	want := Info{Name: "f", Size: size, Seed: 42}
	tests := []struct {
		name   string
		damage func(mem []byte, want *Info)
		err    string
	}{
		{"flipped byte", func(m []byte, _ *Info) { m[HeaderSize+100] ^= 1 }, "CRC-32"},
		{"other seed", func(_ []byte, w *Info) { w.Seed = 43 }, "header says"},
		{"bad magic", func(m []byte, _ *Info) { m[0] = 'X' }, "bad magic"},
		{"name without NUL", func(m []byte, _ *Info) { copy(m[32:], strings.Repeat("x", 32)) }, "NUL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := make([]byte, HeaderSize+size)
			w, _ := Write(mem, want)
			tt.damage(mem, &w)
			got, err := ReadHeader(mem)
			if err == nil {
				err = Verify(got, mem[HeaderSize:], w)
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("got %v, want %q", err, tt.err)
			}
		})
	}
}

func TestSeedDiffersPerBootAndName(t *testing.T) {
	if Seed("a", 1) == Seed("a", 2) || Seed("a", 1) == Seed("b", 1) {
		t.Fatal("seeds collide")
	}
}

func TestWriteRejects(t *testing.T) {
	if _, err := Write(make([]byte, 10), Info{Name: "a", Size: 100}); err == nil {
		t.Fatal("short buffer accepted")
	}
	if _, err := Write(make([]byte, 200), Info{Name: strings.Repeat("n", 32)}); err == nil {
		t.Fatal("long name accepted")
	}
}

// BenchmarkChecksum reports Checksum's throughput beside a plain copy of the
// same size, so the two are compared in one run: 64 KiB (in L2) and every
// power of 4 from 1 MiB to 256 MiB, past the last-level cache.
func BenchmarkChecksum(b *testing.B) {
	for _, size := range []int{64 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20, 256 << 20} {
		src := make([]byte, size)
		Fill(src, 1)
		dst := make([]byte, size)
		b.Run(fmt.Sprintf("crc32/%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				Checksum(src)
			}
		})
		b.Run(fmt.Sprintf("copy/%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				copy(dst, src)
			}
		})
		b.Run(fmt.Sprintf("fill/%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				Fill(dst, 1)
			}
		})
	}
}

// BenchmarkChecksumVsCopy interleaves Checksum (CRC-32), a CRC32C (the
// checksum payloads used before) and a copy of the same bytes in every
// iteration, so all three see the same load on a shared machine, and
// reports each one's throughput and each checksum's as a share of the
// copy's. (tools/devmembench does the same through a /dev/mem mapping in
// a guest.)
func BenchmarkChecksumVsCopy(b *testing.B) {
	castagnoli := crc32.MakeTable(crc32.Castagnoli)
	for _, size := range []int{1 << 20, 4 << 20, 16 << 20, 64 << 20, 256 << 20} {
		src := make([]byte, size)
		Fill(src, 1)
		dst := make([]byte, size)
		copy(dst, src)
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			var crc, c32c, cp time.Duration
			for b.Loop() {
				t0 := time.Now()
				Checksum(src)
				t1 := time.Now()
				crc32.Checksum(src, castagnoli)
				t2 := time.Now()
				copy(dst, src)
				crc, c32c, cp = crc+t1.Sub(t0), c32c+t2.Sub(t1), cp+time.Since(t2)
			}
			n := float64(b.N) * float64(size)
			b.ReportMetric(n/crc.Seconds()/1e9, "crc32-GB/s")
			b.ReportMetric(n/c32c.Seconds()/1e9, "crc32c-GB/s")
			b.ReportMetric(n/cp.Seconds()/1e9, "copy-GB/s")
			b.ReportMetric(100*cp.Seconds()/crc.Seconds(), "crc32/copy-%")
			b.ReportMetric(100*cp.Seconds()/c32c.Seconds(), "crc32c/copy-%")
		})
	}
}

// TestChecksumIsCRC32: Checksum is the IEEE CRC-32 (the check value of
// "123456789" is 0xcbf43926), and Update over parts is Checksum of the
// whole, as memfd's page-by-page checksum needs.
func TestChecksumIsCRC32(t *testing.T) {
	if got := Checksum([]byte("123456789")); got != 0xcbf43926 {
		t.Fatalf("Checksum(123456789) = %#x, want 0xcbf43926", got)
	}
	b := make([]byte, 3<<20+77)
	Fill(b, 7)
	for _, cut := range []int{0, 1, 4095, 4096, 1 << 20, len(b)} {
		if got, want := Update(Checksum(b[:cut]), b[cut:]), Checksum(b); got != want {
			t.Errorf("Update at %d: %#x, want %#x", cut, got, want)
		}
	}
}

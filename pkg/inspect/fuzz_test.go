package inspect

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"

	"github.com/kho-sim/kho-sim/pkg/flb"
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// structureArea is how much of a default-scenario image holds the
// handover's structures (root, LUO, blocks, metadata, memory map) in every
// generation.
const structureArea = 0x50000

// fuzzImage is a good default-scenario image of one generation, cut to
// 1 MiB (everything it references lies below), and its decoding.
type fuzzImage struct {
	mem  []byte
	root uint64
	good *Report
}

func fuzzImages(f *testing.F) []fuzzImage {
	var out []fuzzImage
	for _, abi := range kernel.Generations() {
		path, root := simImageABI(f, "default", 2, abi)
		img := readFile(f, path)[:1<<20]
		good := Decode(mustRegion(f, bytes.Clone(img)), root)
		if len(good.Findings) != 0 || good.LUO == nil || good.LUO.Sessions == nil {
			f.Fatalf("%s image cut to 1 MiB: %v", abi, good.Findings)
		}
		out = append(out, fuzzImage{img, root, good})
	}
	return out
}

// FuzzDecodePatched damages a real image byte by byte. The first input
// byte picks the generation (kernel.Generations order: 7.0, luo-v2, 7.2); each 4
// bytes after it are a little-endian offset (3 bytes) into the structures
// and the byte to write there. Decode must not panic, and what it returns
// must render and encode.
func FuzzDecodePatched(f *testing.F) {
	images := fuzzImages(f)
	patch := func(pa uint64, v byte) []byte {
		off := pa - testBase
		return []byte{byte(off), byte(off >> 8), byte(off >> 16), v}
	}
	seed := func(gen int, patches ...[]byte) { f.Add(append([]byte{byte(gen)}, slices.Concat(patches...)...)) }
	for gen, im := range images {
		l := im.good.LUO
		seed(gen)
		seed(gen, patch(uint64(l.FLBsPA)+8, flb.Max+1))
		seed(gen, patch(uint64(l.SessionsPA)+1, 0xff))
		seed(gen, patch(uint64(l.Sessions.Sessions[0].FilesPA)+8, 0x40))
		seed(gen, patch(uint64(im.good.Subtrees[1].PA)+5, 0xff))
		if l.Ser != nil {
			seed(gen, patch(uint64(l.Ser.PA)+l.Ser.Size-8, 0xff)) // flbs_pa
			seed(gen, patch(uint64(l.Ser.PA)+l.Ser.Size-16, 0x01))
		}
	}
	v1, v72 := images[0].good, images[2].good
	seed(0, patch(uint64(v1.KHO.MemoryMapPA)+12, 0xff), patch(uint64(v1.KHO.MemoryMapPA)+8, 3))
	seed(2, patch(uint64(v72.LUO.Ser.PA), 'x'))                                                // compatible
	seed(2, patch(uint64(v72.LUO.SessionsPA)+1, 0x50))                                         // next: a loop or a stray block
	seed(2, patch(uint64(v72.KexecMetadata.PA), 2))                                            // version
	seed(2, patch(uint64(v72.KHO.MemoryMapPA)+1, 0x10), patch(uint64(v72.KHO.MemoryMapPA), 0)) // a radix slot
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		im := images[int(in[0])%len(images)]
		mem := bytes.Clone(im.mem)
		patches := in[1:]
		for i := 0; i+4 <= len(patches); i += 4 {
			off := (int(patches[i]) | int(patches[i+1])<<8 | int(patches[i+2])<<16) % structureArea
			mem[off] = patches[i+3]
		}
		checkReport(t, Decode(mustRegion(t, mem), im.root))
	})
}

// FuzzDecodeRaw decodes arbitrary bytes as a small region with the root
// at its start.
func FuzzDecodeRaw(f *testing.F) {
	for _, abi := range kernel.Generations() {
		path, root := simImageABI(f, "default", 2, abi)
		f.Add(readFile(f, path)[root-testBase:][:4096]) // the root FDT
	}
	f.Add([]byte{0xd0, 0x0d, 0xfe, 0xed, 0, 0, 0x10, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		mem := make([]byte, 64<<10)
		copy(mem, data)
		checkReport(t, Decode(mustRegion(t, mem), testBase))
	})
}

func mustRegion(t testing.TB, mem []byte) *physmem.Region {
	t.Helper()
	r, err := physmem.New(testBase, mem)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// checkReport checks what holds for every report.
func checkReport(t *testing.T, rep *Report) {
	t.Helper()
	if (rep.KHO == nil) != (rep.RootError() != nil) {
		t.Fatalf("KHO %v but RootError %v", rep.KHO, rep.RootError())
	}
	if l := rep.LUO; l != nil && l.FLB != nil && len(l.FLB.Entries) > flb.Max {
		t.Fatalf("%d FLB entries", len(l.FLB.Entries))
	}
	var text, js bytes.Buffer
	if err := WriteText(&text, rep); err != nil {
		t.Fatal(err)
	}
	if err := WriteJSON(&js, rep); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatalf("JSON does not parse back: %v", err)
	}
	if len(back.Findings) != len(rep.Findings) {
		t.Fatalf("%d findings after the round trip, %d before", len(back.Findings), len(rep.Findings))
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, abi := range kernel.Generations() {
		b.Run(string(abi), func(b *testing.B) {
			path, root := simImageABI(b, "default", 2, abi)
			r := openImage(b, path)
			for b.Loop() {
				if rep := Decode(r, root); len(rep.Findings) != 0 {
					b.Fatal(rep.Findings)
				}
			}
		})
	}
	b.Run("real-7.2", func(b *testing.B) {
		r, root := realRegion(b, "handover.txt")
		for b.Loop() {
			if rep := Decode(r, root); len(rep.Findings) != 0 {
				b.Fatal(rep.Findings)
			}
		}
	})
}

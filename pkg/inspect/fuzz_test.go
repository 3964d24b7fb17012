package inspect

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/kho-sim/kho-sim/pkg/flb"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// structureArea is how much of a default-scenario image holds the
// handover's structures (root, LUO, blocks, metadata, memory map).
const structureArea = 0x50000

// FuzzDecodePatched damages a real image byte by byte: each 4 bytes of
// input are a little-endian offset (3 bytes) into the structures and the
// byte to write there. Decode must not panic, and what it returns must
// render and encode.
func FuzzDecodePatched(f *testing.F) {
	path, root := simImage(f, "default", 2)
	img := readFile(f, path)[:1<<20]
	good := Decode(mustRegion(f, bytes.Clone(img)), root)
	patch := func(pa uint64, v byte) []byte {
		off := pa - testBase
		return []byte{byte(off), byte(off >> 8), byte(off >> 16), v}
	}
	f.Add([]byte{})
	f.Add(patch(uint64(good.LUO.FLBsPA)+8, flb.Max+1))
	f.Add(patch(uint64(good.LUO.SessionsPA)+1, 0xff))
	f.Add(append(patch(uint64(good.KHO.MemoryMapPA)+12, 0xff), patch(uint64(good.KHO.MemoryMapPA)+8, 3)...))
	f.Add(patch(uint64(good.Subtrees[1].PA)+5, 0xff))
	f.Fuzz(func(t *testing.T, patches []byte) {
		mem := bytes.Clone(img)
		for i := 0; i+4 <= len(patches); i += 4 {
			off := (int(patches[i]) | int(patches[i+1])<<8 | int(patches[i+2])<<16) % structureArea
			mem[off] = patches[i+3]
		}
		checkReport(t, Decode(mustRegion(t, mem), root))
	})
}

// FuzzDecodeRaw decodes arbitrary bytes as a small region with the root
// at its start.
func FuzzDecodeRaw(f *testing.F) {
	path, _ := simImage(f, "default", 2)
	f.Add(readFile(f, path)[:4096])
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
	path, root := simImage(b, "default", 2)
	r := openImage(b, path)
	for b.Loop() {
		if rep := Decode(r, root); len(rep.Findings) != 0 {
			b.Fatal(rep.Findings)
		}
	}
}

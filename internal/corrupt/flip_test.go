package corrupt

import (
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"testing"

	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// imagePages lists every page of the handover: the preserved blocks and
// the memory-map chunk and bitmap pages, which are not themselves preserved.
func imagePages(t testing.TB, h *handover) []uint64 {
	t.Helper()
	r := region(t, h.clone())
	in, err := kho.ReadIncoming(r, h.next.RootPA)
	if err != nil {
		t.Fatal(err)
	}
	var pages []uint64
	for _, b := range in.Blocks() {
		for pa := b.PA; pa < b.PA+b.Size(); pa += physmem.PageSize {
			pages = append(pages, pa)
		}
	}
	pages = append(pages, in.MapPages()...)
	slices.Sort(pages)
	return slices.Compact(pages)
}

// flipResult is what one damaged byte did.
type flipResult struct {
	detected bool
	err      error
}

// flipAndBoot XORs one byte of the image with x, runs the next boot on a
// copy in work and then every kind of Apply on the damaged image; neither
// may panic, and the KTAP must stay valid. work is reused between calls.
func flipAndBoot(t testing.TB, h *handover, work []byte, pa uint64, x byte) flipResult {
	t.Helper()
	copy(work, h.mem)
	work[pa-testBase] ^= x
	for _, k := range Kinds() {
		if err := applyAndUndo(t, work, h.next.RootPA, k); err != nil {
			return flipResult{err: err}
		}
	}
	ok, out, err := h.nextBoot(t, work)
	if err != nil {
		return flipResult{err: err}
	}
	if p := validKTAP(h, out); p != "" {
		return flipResult{err: fmt.Errorf("invalid KTAP: %s\n%s", p, out)}
	}
	return flipResult{detected: !ok}
}

// applyAndUndo applies k and puts back the bytes it planned to change, so
// the next kind sees the same damaged image; a panic becomes an error.
func applyAndUndo(t testing.TB, mem []byte, rootPA uint64, k Kind) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("Apply %s panicked: %v\n%s", k, p, debug.Stack())
		}
	}()
	r := region(t, mem)
	edits, perr := plan(r, rootPA, k)
	if _, aerr := Apply(r, rootPA, k); (aerr == nil) != (perr == nil) {
		return fmt.Errorf("Apply %s: %v, but planning: %v", k, aerr, perr)
	}
	for _, e := range edits {
		copy(mem[e.pa-testBase:], e.old)
	}
	return nil
}

// TestRandomByteFlips damages one random byte per run, cycling through
// every image page, and checks the next boot never panics. Half the offsets
// fall in a page's first 256 bytes, where headers live.
func TestRandomByteFlips(t *testing.T) {
	const runs = 200
	h := newHandover(t, "default")
	pages := imagePages(t, h)
	if len(pages) > runs {
		t.Fatalf("%d image pages, more than %d runs can cover", len(pages), runs)
	}
	rng := rand.New(rand.NewPCG(0x6b686f, 0x73696d))
	detected, work := 0, make([]byte, regionSize)
	for i := range runs {
		page := pages[i%len(pages)]
		off := rng.Uint64N(physmem.PageSize)
		if rng.IntN(2) == 0 {
			off = rng.Uint64N(256)
		}
		x := byte(1 + rng.IntN(255))
		res := flipAndBoot(t, h, work, page+off, x)
		if res.err != nil {
			t.Fatalf("byte %#x ^= %#02x: %v", page+off, x, res.err)
		}
		if res.detected {
			detected++
		}
	}
	t.Logf("%d image pages; the next boot failed on %d of %d single-byte flips (the rest hit unused bytes)", len(pages), detected, runs)
	if detected == 0 {
		t.Error("no flip was detected at all")
	}
}

// FuzzByteFlip is TestRandomByteFlips driven by the fuzzer: any page of
// the image, any offset, any XOR value.
func FuzzByteFlip(f *testing.F) {
	h := newHandover(f, "default")
	pages := imagePages(f, h)
	work := make([]byte, regionSize)
	f.Add(uint16(0), uint16(0), byte(1))
	f.Add(uint16(1), uint16(0x48), byte(0xff))
	f.Add(uint16(len(pages)-1), uint16(12), byte(0x80))
	f.Fuzz(func(t *testing.T, page, off uint16, x byte) {
		if x == 0 {
			return
		}
		pa := pages[int(page)%len(pages)] + uint64(off)%physmem.PageSize
		if res := flipAndBoot(t, h, work, pa, x); res.err != nil {
			t.Fatalf("byte %#x ^= %#02x: %v", pa, x, res.err)
		}
	})
}

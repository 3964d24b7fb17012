package corrupt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"testing"

	"github.com/kho-sim/kho-sim/internal/payload"
	"github.com/kho-sim/kho-sim/pkg/fdt"
	"github.com/kho-sim/kho-sim/pkg/flb"
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/luo"
	"github.com/kho-sim/kho-sim/pkg/meta"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

func TestKindsSortedDescribedAndParsed(t *testing.T) {
	kinds := Kinds()
	if len(kinds) != 20 {
		t.Errorf("%d kinds, want 20", len(kinds))
	}
	if !slices.IsSorted(kinds) || len(slices.Compact(slices.Clone(kinds))) != len(kinds) {
		t.Errorf("kinds not sorted and unique: %v", kinds)
	}
	for _, k := range kinds {
		if d := k.Describe(); d == "" || strings.Contains(d, "\n") {
			t.Errorf("%s: description %q is not one line", k, d)
		}
		if got, err := ParseKind(string(k)); err != nil || got != k {
			t.Errorf("ParseKind(%q) = %q, %v", k, got, err)
		}
	}
	if d := Kind("nope").Describe(); d != "" {
		t.Errorf("unknown kind described as %q", d)
	}
	if _, err := ParseKind("nope"); !errors.Is(err, ErrUnknownKind) || !strings.Contains(err.Error(), string(RootMagic)) {
		t.Errorf("ParseKind(nope) = %v, want ErrUnknownKind listing the kinds", err)
	}
}

// The offsets this package computes must be where the owners read.
func TestOffsetsMatchOwners(t *testing.T) {
	page := make([]byte, luo.FLBPageSize)
	binary.LittleEndian.PutUint64(page[flbDataOff:], 0x1234)
	binary.LittleEndian.PutUint64(page[flbCountOff:], 7)
	if e, _ := flb.ReadEntry(page, 0); e.Data != 0x1234 {
		t.Errorf("entry 0 data read as %#x from offset %d", e.Data, flbDataOff)
	}
	if _, count, _ := flb.ReadHeader(page); count != 7 {
		t.Errorf("header count read as %d from offset %d", count, flbCountOff)
	}
}

// damageCase is what one kind must do to a real image and what the next
// boot must say about it.
type damageCase struct {
	kind Kind
	// reason is a substring of the next boot's KTAP naming the damage.
	reason string
	// check re-reads the damaged image and fails unless the damage is the
	// one the kind promises.
	check func(t *testing.T, im image, before []byte)
}

func damageCases() []damageCase {
	return []damageCase{
		{RootMagic, "bad magic 0xd00dfeec", checkBadMagic(rootFDT)},
		{RootTruncated, "exceeds totalsize", checkTruncated(rootFDT)},
		{LUOMagic, `LUO FDT: kho: subtree "LUO" FDT at`, checkBadMagic(luoFDT)},
		{LUOTruncated, `LUO FDT: kho: subtree "LUO" FDT at`, checkTruncated(luoFDT)},
		{RootCompatible, `is "kho-v9", not "kho-v1"`, checkCompatible(rootFDT, "/", "kho-v9")},
		{LUOCompatible, `LUO FDT compatible "luo-v9", want "luo-v1"`, checkCompatible(luoFDT, "/", "luo-v9")},
		{SessionCompatible, `luo-session compatible "luo-session-v9"`, checkCompatible(luoFDT, "/luo-session", "luo-session-v9")},
		{FLBCompatible, `luo-flb compatible "luo-flb-v9"`, checkCompatible(luoFDT, "/luo-flb", "luo-flb-v9")},
		{MetaCompatible, `kho-sim metadata is not "kho-sim-v1"`, checkCompatible(metaFDT, "/", "kho-sim-v9")},
		{MissingFLBNode, "LUO FDT has no luo-flb node", checkMissingFLBNode},
		{FLBHeaderSize, `"luo-flb-header" is 4 bytes, want 8`, checkHeaderSize},
		{FLBCountMax, "FLB header count 64 above LUO_FLB_MAX 63", checkFLBHeader(1, 64)},
		{FLBCountPgcnt, "FLB header count 100 above LUO_FLB_MAX 63", checkFLBHeader(1, 100)},
		{FLBPgcnt, "FLB header pgcnt 0, want 1", checkFLBHeader(0, 2)},
		{FLBNameNUL, "has no NUL in its 48 bytes", checkNameNUL},
		{FLBDataOutside, "lies outside the region", checkDataOutside},
		{PageUnpreserved, "is not in the preserved-memory map", checkUnpreserved},
		{PayloadBitflip, `payload "iommu-core": CRC-32`, checkBitflip},
		{MemmapLoop, "chunk list loops back", checkMemmapLoop},
		{LiveupdateNumber, "liveupdate-number 6, want 1", checkLiveupdate},
	}
}

// TestApply damages a real image with every kind and checks the damage,
// that nothing else changed, and that the next boot fails for the reason
// the kind stands for, without panicking.
func TestApply(t *testing.T) {
	h := newHandover(t, "default")
	cases := damageCases()
	var covered []Kind
	for _, c := range cases {
		covered = append(covered, c.kind)
	}
	slices.Sort(covered)
	if !slices.Equal(covered, Kinds()) {
		t.Fatalf("cases cover %v, kinds are %v", covered, Kinds())
	}
	for _, c := range cases {
		t.Run(string(c.kind), func(t *testing.T) {
			mem := h.clone()
			r := region(t, mem)
			edits, err := plan(r, h.next.RootPA, c.kind)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(mem, h.mem) {
				t.Fatal("planning wrote to the region")
			}
			desc, err := Apply(r, h.next.RootPA, c.kind)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s", desc)
			if want := describe(c.kind, edits); desc != want || strings.Contains(desc, "\n") {
				t.Errorf("description %q, want the one line %q", desc, want)
			}
			for _, e := range edits {
				off := e.pa - testBase
				if !strings.Contains(desc, fmt.Sprintf("%#x+%d", e.pa, len(e.new))) {
					t.Errorf("description does not name %#x+%d", e.pa, len(e.new))
				}
				if !bytes.Equal(h.mem[off:off+uint64(len(e.old))], e.old) || !bytes.Equal(mem[off:off+uint64(len(e.new))], e.new) {
					t.Errorf("%s at %#x: bytes % x -> % x, described % x -> % x",
						e.what, e.pa, h.mem[off:off+uint64(len(e.old))], mem[off:off+uint64(len(e.new))], e.old, e.new)
				}
			}
			for i := range mem {
				if mem[i] != h.mem[i] && !inEdits(edits, testBase+uint64(i)) {
					t.Errorf("byte %#x changed (%#02x -> %#02x) outside the described edits", testBase+i, h.mem[i], mem[i])
				}
			}
			c.check(t, image{r, h.next.RootPA}, h.mem)

			ok, out, err := h.nextBoot(t, mem)
			if err != nil {
				t.Fatal(err)
			}
			if ok || !strings.Contains(out, c.reason) {
				t.Errorf("next boot ok=%v, want a failure naming %q:\n%s", ok, c.reason, out)
			}
			if p := validKTAP(h, out); p != "" {
				t.Errorf("next boot's KTAP is invalid: %s\n%s", p, out)
			}
			t.Logf("next boot: %s", firstReason(out))
		})
	}
}

func inEdits(edits []edit, pa uint64) bool {
	for _, e := range edits {
		if pa >= e.pa && pa < e.pa+uint64(len(e.new)) {
			return true
		}
	}
	return false
}

// firstReason is the diagnostic under the boot's first failed result.
func firstReason(ktap string) string {
	lines := strings.Split(ktap, "\n")
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "not ok") && i+1 < len(lines) {
			return strings.TrimSpace(l) + " / " + strings.TrimSpace(lines[i+1])
		}
	}
	return ""
}

type fdtAt func(t *testing.T, im image) uint64

func rootFDT(_ *testing.T, im image) uint64 { return im.rootPA }
func luoFDT(t *testing.T, im image) uint64  { return subPA(t, im, luo.FDTKHOEntryName) }
func metaFDT(t *testing.T, im image) uint64 { return subPA(t, im, meta.Name) }

func subPA(t *testing.T, im image, name string) uint64 {
	t.Helper()
	root, err := im.root()
	if err != nil {
		t.Fatal(err)
	}
	pa, err := root.tree.Root.Child(name).U64(kho.PropSubFDT)
	if err != nil {
		t.Fatal(err)
	}
	return pa
}

// parse reads the FDT at pa with pkg/fdt alone, sized by its header.
func parse(t *testing.T, r *physmem.Region, pa uint64) (*fdt.Tree, error) {
	t.Helper()
	hdr := mustBytes(t, r, pa, fdtHeaderSize)
	size, err := fdt.TotalSize(hdr)
	if err != nil {
		return nil, err
	}
	return fdt.Parse(mustBytes(t, r, pa, uint64(size)))
}

func mustParse(t *testing.T, r *physmem.Region, pa uint64) *fdt.Tree {
	t.Helper()
	tree, err := parse(t, r, pa)
	if err != nil {
		t.Fatalf("FDT at %#x no longer parses: %v", pa, err)
	}
	return tree
}

func mustBytes(t *testing.T, r *physmem.Region, pa, n uint64) []byte {
	t.Helper()
	b, err := r.Bytes(pa, n)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func checkBadMagic(at fdtAt) func(*testing.T, image, []byte) {
	return func(t *testing.T, im image, before []byte) {
		pa := at(t, im)
		got := binary.BigEndian.Uint32(mustBytes(t, im.r, pa, 4))
		if got != fdt.Magic^1 {
			t.Errorf("magic %#08x, want %#08x", got, fdt.Magic^1)
		}
		if _, err := parse(t, im.r, pa); err == nil {
			t.Error("FDT with a bad magic still parses")
		}
	}
}

func checkTruncated(at fdtAt) func(*testing.T, image, []byte) {
	return func(t *testing.T, im image, before []byte) {
		pa := at(t, im)
		hdr := mustBytes(t, im.r, pa, fdtHeaderSize)
		total := binary.BigEndian.Uint32(hdr[hTotalSize:])
		structEnd := binary.BigEndian.Uint32(hdr[hOffStruct:]) + binary.BigEndian.Uint32(hdr[hSizeStruct:])
		if total >= structEnd {
			t.Errorf("totalsize %d does not cut the struct block ending at %d", total, structEnd)
		}
		if _, err := parse(t, im.r, pa); err == nil {
			t.Error("truncated FDT still parses")
		}
	}
}

// checkCompatible wants the blob still valid, with the node's compatible
// of the same length but no longer the original.
func checkCompatible(at fdtAt, path, want string) func(*testing.T, image, []byte) {
	return func(t *testing.T, im image, before []byte) {
		tree := mustParse(t, im.r, at(t, im))
		got, err := tree.Lookup(path).String("compatible")
		if err != nil || got != want {
			t.Errorf("%s compatible %q (%v), want %q", path, got, err, want)
		}
	}
}

func checkMissingFLBNode(t *testing.T, im image, before []byte) {
	tree := mustParse(t, im.r, luoFDT(t, im))
	if tree.Root.Child(luo.FDTFLBNode) != nil {
		t.Error("luo-flb node still present")
	}
	if tree.Root.Child(luo.FDTSessionNode) == nil {
		t.Error("luo-session node went too")
	}
	if _, err := tree.Root.U64(luo.FDTLiveupdateNum); err != nil {
		t.Errorf("root properties damaged: %v", err)
	}
}

func checkHeaderSize(t *testing.T, im image, before []byte) {
	tree := mustParse(t, im.r, luoFDT(t, im))
	v, ok := tree.Root.Child(luo.FDTFLBNode).Prop(luo.FDTFLBHeader)
	if !ok || len(v) != 4 {
		t.Errorf("luo-flb-header is %d bytes (present %v), want 4", len(v), ok)
	}
	if c, _ := tree.Root.Child(luo.FDTFLBNode).String("compatible"); c != luo.FDTFLBCompatible {
		t.Errorf("luo-flb compatible %q after the shrink", c)
	}
}

// flbPage reads the FLB page of the undamaged image, whose LUO FDT the
// FLB kinds leave alone.
func flbPage(t *testing.T, im image) (uint64, []byte) {
	t.Helper()
	pa, err := mustParse(t, im.r, luoFDT(t, im)).Root.Child(luo.FDTFLBNode).U64(luo.FDTFLBHeader)
	if err != nil {
		t.Fatal(err)
	}
	return pa, mustBytes(t, im.r, pa, luo.FLBPageSize)
}

func checkFLBHeader(pgcnt, count uint64) func(*testing.T, image, []byte) {
	return func(t *testing.T, im image, before []byte) {
		_, page := flbPage(t, im)
		p, c, _ := flb.ReadHeader(page)
		if p != pgcnt || c != count {
			t.Errorf("FLB header pgcnt %d count %d, want %d %d", p, c, pgcnt, count)
		}
	}
}

func checkNameNUL(t *testing.T, im image, before []byte) {
	_, page := flbPage(t, im)
	e, err := flb.ReadEntry(page, 0)
	if err != nil {
		t.Fatal(err)
	}
	if name, terminated := e.NameString(); terminated || !strings.HasPrefix(name, "iommu-core") {
		t.Errorf("entry 0 name %q terminated=%v, want the old name run on without a NUL", name, terminated)
	}
}

func checkDataOutside(t *testing.T, im image, before []byte) {
	_, page := flbPage(t, im)
	e, _ := flb.ReadEntry(page, 0)
	if im.r.Contains(e.Data, 1) {
		t.Errorf("entry 0 data %#x lies inside the region", e.Data)
	}
}

// checkUnpreserved wants the memory map still valid and the payload's first
// page, and only its block, missing from it.
func checkUnpreserved(t *testing.T, im image, before []byte) {
	was, err := kho.ReadIncoming(region(t, before), im.rootPA)
	if err != nil {
		t.Fatal(err)
	}
	in, err := kho.ReadIncoming(im.r, im.rootPA)
	if err != nil {
		t.Fatalf("memory map no longer reads: %v", err)
	}
	pa, _, _, err := image{region(t, before), im.rootPA}.firstPayload()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.Map(pa, 1); !errors.Is(err, kho.ErrNotPreserved) {
		t.Errorf("payload page %#x: %v, want ErrNotPreserved", pa, err)
	}
	gone := slices.DeleteFunc(was.Blocks(), func(b kho.Block) bool { return slices.Contains(in.Blocks(), b) })
	if len(gone) != 1 || gone[0].PA > pa || pa >= gone[0].PA+gone[0].Size() || len(in.Blocks()) != len(was.Blocks())-1 {
		t.Errorf("blocks gone %v, want just the one holding %#x", gone, pa)
	}
}

func checkBitflip(t *testing.T, im image, before []byte) {
	pa, _, size, err := image{region(t, before), im.rootPA}.firstPayload()
	if err != nil {
		t.Fatal(err)
	}
	body := pa + payload.HeaderSize - testBase
	after := mustBytes(t, im.r, im.r.Base(), im.r.Size())
	flipped := 0
	for i := range after {
		if after[i] == before[i] {
			continue
		}
		flipped += bits.OnesCount8(after[i] ^ before[i])
		if uint64(i) < body || uint64(i) >= body+size {
			t.Errorf("byte %#x outside the payload body changed", testBase+i)
		}
	}
	if flipped != 1 {
		t.Errorf("%d bits flipped, want 1", flipped)
	}
}

func checkMemmapLoop(t *testing.T, im image, before []byte) {
	root := mustParse(t, im.r, im.rootPA)
	pa, err := root.Root.U64(kho.PropMemoryMap)
	if err != nil {
		t.Fatal(err)
	}
	if next := binary.LittleEndian.Uint64(mustBytes(t, im.r, pa, 8)); next != pa {
		t.Errorf("first chunk %#x: next %#x, want itself", pa, next)
	}
}

func checkLiveupdate(t *testing.T, im image, before []byte) {
	n, err := mustParse(t, im.r, luoFDT(t, im)).Root.U64(luo.FDTLiveupdateNum)
	if err != nil || n != 6 {
		t.Errorf("liveupdate-number %d (%v), want 1+5", n, err)
	}
}

// TestApplyLaterGenerations damages luo-v2 and 7.2 images with every kind:
// a kind either applies, and the next boot of that generation fails for
// its reason, or it damages something the generation does not have and
// says so, changing nothing.
func TestApplyLaterGenerations(t *testing.T) {
	const notFDT = `7.2's raw "luo-v5" blob, not an FDT`
	for _, g := range []struct {
		abi  kernel.Generation
		want map[Kind]string // reason in the next boot, or "n/a: " and why not
	}{
		{kernel.LUOv2, map[Kind]string{
			RootMagic: "bad magic 0xd00dfeec", RootTruncated: "exceeds totalsize", RootCompatible: `is "kho-v9"`,
			LUOMagic: `LUO FDT: kho: subtree "LUO" FDT at`, LUOTruncated: `LUO FDT: kho: subtree "LUO" FDT at`,
			LUOCompatible: `LUO FDT compatible "luo-v9", want "luo-v2"`, MetaCompatible: `kho-sim metadata is not "kho-sim-v1"`,
			SessionCompatible: "n/a: no property /luo-session/compatible", FLBCompatible: "n/a: no property /luo-flb/compatible",
			MissingFLBNode: "n/a: no node /luo-flb", FLBHeaderSize: "n/a: no property /luo-flb/luo-flb-header",
			FLBCountMax: "count 64 above LUO_FLB_MAX 63", FLBCountPgcnt: "count 100 above LUO_FLB_MAX 63",
			FLBPgcnt: "pgcnt 0, want 1", FLBNameNUL: "has no NUL in its 48 bytes", FLBDataOutside: "lies outside the region",
			PageUnpreserved: "is not in the preserved-memory map", PayloadBitflip: "CRC-32",
			MemmapLoop: "chunk list loops back", LiveupdateNumber: "liveupdate-number 6, want 1",
		}},
		{kernel.V72, map[Kind]string{
			RootMagic: "bad magic 0xd00dfeec", RootTruncated: "exceeds totalsize", RootCompatible: `is "kho-v9"`,
			LUOMagic: "n/a: " + notFDT, LUOTruncated: "n/a: " + notFDT,
			LUOCompatible: `LUO blob compatible "luo-v9", want "luo-v5"`, MetaCompatible: `kho-sim metadata is not "kho-sim-v1"`,
			SessionCompatible: "n/a: " + notFDT, FLBCompatible: "n/a: " + notFDT,
			MissingFLBNode: "n/a: " + notFDT, FLBHeaderSize: "n/a: " + notFDT,
			FLBCountMax: "count 64 above LUO_FLB_MAX 63", FLBCountPgcnt: "count 100 above LUO_FLB_MAX 63",
			FLBPgcnt: "pgcnt 0, want 1", FLBNameNUL: "has no NUL in its 48 bytes", FLBDataOutside: "lies outside the region",
			PageUnpreserved: "is not in the preserved-memory map", PayloadBitflip: "CRC-32",
			MemmapLoop: "n/a: radix tree of fixed depth", LiveupdateNumber: "liveupdate-number 6, want 1",
		}},
	} {
		t.Run(string(g.abi), func(t *testing.T) {
			h := newHandoverABI(t, "default", g.abi)
			for _, k := range Kinds() {
				want, ok := g.want[k]
				if !ok {
					t.Fatalf("no expectation for %s", k)
				}
				t.Run(string(k), func(t *testing.T) {
					mem := h.clone()
					desc, err := Apply(region(t, mem), h.next.RootPA, k)
					if why, na := strings.CutPrefix(want, "n/a: "); na {
						if !errors.Is(err, ErrNotApplicable) || !strings.Contains(err.Error(), why) {
							t.Fatalf("Apply: %v, want not applicable because %q", err, why)
						}
						if !bytes.Equal(mem, h.mem) {
							t.Fatal("a kind that does not apply changed the image")
						}
						return
					}
					if err != nil {
						t.Fatal(err)
					}
					t.Logf("%s", desc)
					ok, out, err := h.nextBoot(t, mem)
					if err != nil {
						t.Fatal(err)
					}
					if ok || !strings.Contains(out, want) {
						t.Errorf("next boot ok=%v, want a failure naming %q:\n%s", ok, want, out)
					}
					if p := validKTAP(h, out); p != "" {
						t.Errorf("next boot's KTAP is invalid: %s", p)
					}
				})
			}
		})
	}
}

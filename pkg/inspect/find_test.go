package inspect

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/kho-sim/kho-sim/pkg/flb"
	"github.com/kho-sim/kho-sim/pkg/kernel"
)

// TestFindRootsEveryGeneration: the root a boot hands over is found by
// scanning, in every generation, and is the one PickRoot chooses.
func TestFindRootsEveryGeneration(t *testing.T) {
	for _, abi := range kernel.Generations() {
		t.Run(string(abi), func(t *testing.T) {
			path, root := simImageABI(t, "default", 2, abi)
			cands := FindRoots(openImage(t, path))
			c, err := PickRoot(cands)
			if err != nil {
				t.Fatal(err)
			}
			if c.PA != root || !c.Valid() || c.Report.KHOSim == nil || c.Report.KHOSim.Boot != 1 {
				t.Errorf("picked %v, want the valid root %#x of boot 1 (candidates %v)", c, root, cands)
			}
		})
	}
}

// TestFindRootsDamaged: a handover with a finding is still a candidate but
// never chosen; the error lists it with its first finding and asks for
// --root. A root whose compatible is damaged is no KHO root at all.
func TestFindRootsDamaged(t *testing.T) {
	path, root := simImage(t, "default", 2)
	good := Decode(openImage(t, path), root)
	img := readFile(t, path)
	img[uint64(good.LUO.FLBsPA)+8-testBase] = flb.Max + 1 // the FLB header's count
	cands := FindRoots(mustRegion(t, bytes.Clone(img)))
	if len(cands) != 1 || cands[0].PA != root || cands[0].Valid() {
		t.Fatalf("candidates %v, want only the damaged root %#x", cands, root)
	}
	_, err := PickRoot(cands)
	if err == nil || !strings.Contains(err.Error(), "none is valid") || !strings.Contains(err.Error(), "--root ADDR") ||
		!strings.Contains(err.Error(), cands[0].String()) {
		t.Errorf("error %v, want the damaged candidate listed", err)
	}

	// "kho-v1" -> "kho-v2": the root is no longer a KHO root.
	i := bytes.Index(img[root-testBase:], []byte("kho-v1\x00"))
	img[root-testBase+uint64(i)+5] = '2'
	if cands := FindRoots(mustRegion(t, img)); len(cands) != 0 {
		t.Errorf("candidates %v in an image whose only root has another compatible", cands)
	}
	if _, err := PickRoot(nil); err == nil || !strings.Contains(err.Error(), "no KHO root FDT in the image") {
		t.Errorf("no candidates: %v", err)
	}
}

// TestPickRoot is the choice among candidates, table-driven.
func TestPickRoot(t *testing.T) {
	cand := func(pa uint64, boot, findings int) Candidate {
		r := &Report{Findings: make([]kernel.Finding, findings)}
		if boot > 0 {
			r.KHOSim = &Meta{Boot: boot}
		}
		return Candidate{PA: pa, Compatible: "kho-v1", Report: r}
	}
	for _, tc := range []struct {
		name  string
		cands []Candidate
		want  uint64 // 0: an error
		err   string
	}{
		{"one valid", []Candidate{cand(0x1000, 3, 0)}, 0x1000, ""},
		{"one valid among damaged", []Candidate{cand(0x1000, 2, 4), cand(0x2000, 3, 0)}, 0x2000, ""},
		{"a kernel's own, no metadata", []Candidate{cand(0x1000, 0, 0)}, 0x1000, ""},
		{"stale root of an earlier boot", []Candidate{cand(0x1000, 2, 0), cand(0x5000, 3, 0), cand(0x9000, 1, 0)}, 0x5000, ""},
		{"two valid, same boot", []Candidate{cand(0x1000, 2, 0), cand(0x2000, 2, 0)}, 0, "2 are valid and no kho-sim boot number tells the newest"},
		{"two valid, no metadata", []Candidate{cand(0x1000, 0, 0), cand(0x2000, 0, 0)}, 0, "2 are valid"},
		{"none valid", []Candidate{cand(0x1000, 2, 1), cand(0x2000, 3, 2)}, 0, "none is valid"},
		{"none", nil, 0, "no KHO root FDT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := PickRoot(tc.cands)
			if tc.want != 0 {
				if err != nil || c.PA != tc.want {
					t.Errorf("picked %#x, %v; want %#x", c.PA, err, tc.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want one saying %q", err, tc.err)
			}
			for _, c := range tc.cands {
				if !strings.Contains(err.Error(), c.String()) {
					t.Errorf("error does not list candidate %v:\n%v", c, err)
				}
			}
		})
	}
}

// FuzzFindRoots scans arbitrary memory: the input is the first bytes of
// an 8-page region, and the seeds put a real root FDT at a page boundary.
// FindRoots and PickRoot must not panic, and every candidate must be a
// decoded page-aligned root.
func FuzzFindRoots(f *testing.F) {
	for _, abi := range kernel.Generations() {
		path, root := simImageABI(f, "default", 2, abi)
		img := readFile(f, path)
		size := binary.BigEndian.Uint32(img[root-testBase+4:])
		f.Add(append(make([]byte, 4096), img[root-testBase:root-testBase+uint64(size)]...))
	}
	f.Add([]byte{0xd0, 0x0d, 0xfe, 0xed, 0, 0, 0, 40})
	f.Fuzz(func(t *testing.T, data []byte) {
		mem := make([]byte, 8*4096)
		copy(mem, data)
		for _, c := range FindRoots(mustRegion(t, mem)) {
			if c.PA%4096 != 0 || c.Report == nil || c.Report.KHO == nil {
				t.Fatalf("bad candidate %+v", c)
			}
			_ = c.String()
		}
		_, _ = PickRoot(FindRoots(mustRegion(t, mem)))
	})
}

// TestAnnotateU64: every two-cell property gets its native-endian u64
// value; nothing else changes.
func TestAnnotateU64(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"\tpreserved-memory-map = <0x901500 0x00>;\n", "\tpreserved-memory-map = <0x901500 0x00>; /* 0x159000 */\n"},
		{"\t\tfdt = <0x10 0x00>;\n", "\t\tfdt = <0x10 0x00>; /* 0x10000000 */\n"},
		{"\tseed = <0xf17d5777 0xf88381af>;\n", "\tseed = <0xf17d5777 0xf88381af>; /* 0xaf8183f877577df1 */\n"},
		{"\tcrc = <0xdbdd67ae>;\n", "\tcrc = <0xdbdd67ae>;\n"},
		{"\treg = <0x01 0x02 0x03>;\n", "\treg = <0x01 0x02 0x03>;\n"},
		{"\tcompatible = \"kho-v1\";\n", "\tcompatible = \"kho-v1\";\n"},
		{"\tname = \"a = <0x1 0x2>;\";\n", "\tname = \"a = <0x1 0x2>;\";\n"},
		{"\tb = [01 02 03];\n\tc;\n", "\tb = [01 02 03];\n\tc;\n"},
	} {
		if got := annotateU64(tc.in); got != tc.want {
			t.Errorf("annotateU64(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

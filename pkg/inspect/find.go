package inspect

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/kho-sim/kho-sim/pkg/fdt"
	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// Candidate is a KHO root FDT found by scanning a region, decoded.
type Candidate struct {
	PA         uint64
	Compatible string
	// Report is Decode's report of the handover rooted here.
	Report *Report
}

// Valid reports whether the handover rooted here decodes without a finding.
func (c Candidate) Valid() bool { return len(c.Report.Findings) == 0 }

// boot is the number of the kho-sim boot that wrote the handover; 0 when it
// carries no kho-sim metadata.
func (c Candidate) boot() int {
	if c.Report.KHOSim == nil {
		return 0
	}
	return c.Report.KHOSim.Boot
}

func (c Candidate) String() string {
	s := fmt.Sprintf("%#x (%q", c.PA, c.Compatible)
	if b := c.boot(); b != 0 {
		s += fmt.Sprintf(", kho-sim boot %d", b)
	}
	if n := len(c.Report.Findings); n > 0 {
		s += fmt.Sprintf(", %d findings, first: %s", n, printable(c.Report.Findings[0].String()))
	} else {
		s += ", valid"
	}
	return s + ")"
}

// FindRoots scans r for KHO root FDTs: a page that starts with the FDT
// magic, parses as an FDT of at most a root's size and whose root node is
// compatible with kho-v1 or kho-v4. The kernel allocates the root as whole
// pages, so only page boundaries are looked at. Each one found is decoded.
func FindRoots(r *physmem.Region) []Candidate {
	var out []Candidate
	for pa := r.Base(); pa+40 <= r.End(); pa += physmem.PageSize {
		hdr, err := r.Bytes(pa, 40)
		if err != nil || binary.BigEndian.Uint32(hdr) != fdt.Magic {
			continue
		}
		size, err := fdt.TotalSize(hdr)
		if err != nil || size > kho.MaxFDTSize {
			continue
		}
		blob, err := r.Bytes(pa, uint64(size))
		if err != nil {
			continue
		}
		t, err := fdt.Parse(blob)
		if err != nil || !(t.Root.IsCompatible(kho.Compatible) || t.Root.IsCompatible(kho.CompatibleV4)) {
			continue
		}
		rep := Decode(r, pa)
		if rep.KHO == nil {
			continue // Decode reads the root as FindRoots did; never here
		}
		out = append(out, Candidate{PA: pa, Compatible: rep.KHO.Compatible, Report: rep})
	}
	return out
}

// PickRoot chooses the handover to show among the candidates: the only
// valid one. A kho-sim image also keeps the roots of earlier boots, which
// may still decode cleanly when nothing overwrote their pages; among
// several valid ones written by kho-sim the newest boot's wins. Anything
// else is an error that lists every candidate.
func PickRoot(cands []Candidate) (Candidate, error) {
	if len(cands) == 0 {
		return Candidate{}, errors.New("no KHO root FDT in the image: no page starts with an FDT whose root is compatible with " +
			kho.Compatible + " or " + kho.CompatibleV4 + "; pass --root ADDR")
	}
	var valid []Candidate
	for _, c := range cands {
		if c.Valid() {
			valid = append(valid, c)
		}
	}
	if len(valid) == 1 {
		return valid[0], nil
	}
	if len(valid) > 1 {
		best, tie := valid[0], false
		for _, c := range valid[1:] {
			switch {
			case c.boot() > best.boot():
				best, tie = c, false
			case c.boot() == best.boot():
				tie = true
			}
		}
		if !tie && best.boot() != 0 {
			return best, nil
		}
	}
	list := make([]string, len(cands))
	for i, c := range cands {
		list[i] = c.String()
	}
	why := "none is valid"
	if len(valid) > 1 {
		why = fmt.Sprintf("%d are valid and no kho-sim boot number tells the newest", len(valid))
	}
	return Candidate{}, fmt.Errorf("%d KHO root FDT candidates in the image, %s; pass --root ADDR with one of: %s",
		len(cands), why, strings.Join(list, "; "))
}

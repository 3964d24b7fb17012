package sim

import (
	"fmt"

	"github.com/kho-sim/kho-sim/pkg/fdt"
	"github.com/kho-sim/kho-sim/pkg/luo"
)

// outLUOFDT parses the outgoing LUO FDT (7.0 and luo-v2) from the region.
func (b *boot) outLUOFDT() (*fdt.Tree, error) {
	r := b.cfg.Region
	hdr, err := r.Bytes(b.luoPA, 40)
	if err != nil {
		return nil, err
	}
	size, err := fdt.TotalSize(hdr)
	if err != nil {
		return nil, fmt.Errorf("outgoing LUO FDT: %w", err)
	}
	blob, err := r.Bytes(b.luoPA, uint64(size))
	if err != nil {
		return nil, err
	}
	t, err := fdt.Parse(blob)
	if err != nil {
		return nil, fmt.Errorf("outgoing LUO FDT: %w", err)
	}
	return t, nil
}

// outFLBPage finds the 7.0 FLB page through the outgoing LUO FDT, as the
// next kernel will, rather than asking the model where it put it.
func (b *boot) outFLBPage() ([]byte, error) {
	t, err := b.outLUOFDT()
	if err != nil {
		return nil, err
	}
	if err := checkNode(t.Root, luo.FDTFLBNode, luo.FDTFLBCompatible, luo.FDTFLBHeader); err != nil {
		return nil, fmt.Errorf("outgoing LUO FDT: %w", err)
	}
	pa, _ := t.Root.Child(luo.FDTFLBNode).U64(luo.FDTFLBHeader)
	return b.cfg.Region.Bytes(pa, luo.FLBPageSize)
}

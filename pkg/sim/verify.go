package sim

import (
	"errors"
	"fmt"

	"github.com/kho-sim/kho-sim/pkg/check"
	"github.com/kho-sim/kho-sim/pkg/fdt"
	"github.com/kho-sim/kho-sim/pkg/flb"
	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/luo"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// KernelAction says what a real 7.0 kernel does with a handover that fails
// a check; kho-sim reports it beside its own finding.
type KernelAction string

// What the 7.0 kernel does with bad LUO state.
const (
	PanicsAtBoot    KernelAction = "the 7.0 kernel panics at boot (liveupdate_early_init)"
	ReadsPastPage   KernelAction = "the 7.0 kernel reads past the FLB page"
	LosesFLBState   KernelAction = "the 7.0 kernel does not find the FLB (ENOENT) and its state is lost"
	UsesBadAddress  KernelAction = "the 7.0 kernel dereferences the address with phys_to_virt unchecked"
	UsesUnpreserved KernelAction = "the 7.0 kernel hands the subsystem memory the new kernel may already have reused"
	DisablesRevival KernelAction = "the 7.0 kernel disables KHO revival and boots without the handover"
)

// Finding is one thing wrong with a handover.
type Finding struct {
	What   string
	Kernel KernelAction
}

func (f Finding) Error() string {
	if f.Kernel == "" {
		return f.What
	}
	return f.What + "; " + string(f.Kernel)
}

func finding(k KernelAction, format string, args ...any) error {
	return Finding{fmt.Sprintf(format, args...), k}
}

// checkLUO reads the LUO FDT and the FLB table with kho-sim's own strict
// reader and compares them with what the metadata says was handed over.
func (b *boot) checkLUO() error {
	t, _, err := b.in.SubtreeFDT(luo.FDTKHOEntryName)
	if err != nil {
		return finding(PanicsAtBoot, "LUO FDT: %v", err)
	}
	r := t.Root
	if !r.IsCompatible(luo.FDTCompatible) {
		c, _ := r.String("compatible")
		return finding(PanicsAtBoot, "LUO FDT compatible %q, want %q", c, luo.FDTCompatible)
	}
	num, err := r.U64(luo.FDTLiveupdateNum)
	if err != nil {
		return finding(PanicsAtBoot, "LUO FDT: %v", err)
	}
	if num != b.inMeta.LUONumber {
		return finding("", "liveupdate-number %d, want %d (one more per hop, 1 after a cold boot)", num, b.inMeta.LUONumber)
	}
	if err := checkNode(r, luo.FDTSessionNode, luo.FDTSessionCompatible, luo.FDTSessionHeader); err != nil {
		return err
	}
	if err := checkNode(r, luo.FDTFLBNode, luo.FDTFLBCompatible, luo.FDTFLBHeader); err != nil {
		return err
	}
	pa, _ := r.Child(luo.FDTFLBNode).U64(luo.FDTFLBHeader)
	page, err := b.in.Map(pa, luo.FLBPageSize)
	if err != nil {
		return finding(UsesBadAddress, "FLB page %#x: %v", pa, err)
	}
	entries, err := ReadFLBTable(page)
	if err != nil {
		return err
	}
	for i, e := range entries {
		switch _, err := b.in.Map(e.Data, 1); {
		case errors.Is(err, physmem.ErrOutOfRegion):
			return finding(UsesBadAddress, "FLB entry %d (%s): data %#x lies outside the region %#x-%#x", i, e.Name, e.Data, b.cfg.Region.Base(), b.cfg.Region.End()-1)
		case errors.Is(err, kho.ErrNotPreserved):
			return finding(UsesUnpreserved, "FLB entry %d (%s): data %#x is not in the preserved-memory map", i, e.Name, e.Data)
		}
	}
	return compareEntries(entries, b.inEntries())
}

// checkNode checks a LUO subnode's compatible and its u64 header property.
func checkNode(r *fdt.Node, name, compat, prop string) error {
	n := r.Child(name)
	if n == nil {
		return finding(PanicsAtBoot, "LUO FDT has no %s node", name)
	}
	if !n.IsCompatible(compat) {
		c, _ := n.String("compatible")
		return finding(PanicsAtBoot, "%s compatible %q, want %q", name, c, compat)
	}
	if _, err := n.U64(prop); err != nil {
		return finding(PanicsAtBoot, "%s: %v", name, err)
	}
	return nil
}

// ReadFLBTable decodes an FLB page strictly: the count must fit the page
// and LUO_FLB_MAX, pgcnt must be 1, and every name must end within its
// 48 bytes. The 7.0 kernel checks none of this.
func ReadFLBTable(page []byte) ([]check.Entry, error) {
	pgcnt, count, err := flb.ReadHeader(page)
	if err != nil {
		return nil, finding(ReadsPastPage, "FLB header: %v", err)
	}
	if pgcnt != flb.PageCount {
		return nil, finding(ReadsPastPage, "FLB header pgcnt %d, want %d", pgcnt, flb.PageCount)
	}
	if count > flb.Max {
		return nil, finding(ReadsPastPage, "FLB header count %d above LUO_FLB_MAX %d (one page of pgcnt holds %d entries)", count, flb.Max, flb.Max)
	}
	var out []check.Entry
	for i := range int(count) {
		e, err := flb.ReadEntry(page, i)
		if err != nil {
			return nil, finding(ReadsPastPage, "FLB entry %d: %v", i, err)
		}
		name, ok := e.NameString()
		if !ok {
			return nil, finding(ReadsPastPage, "FLB entry %d: name %q has no NUL in its %d bytes (strcmp runs past it)", i, name, flb.NameLen)
		}
		out = append(out, check.Entry{Name: name, Data: e.Data, Count: e.Count})
	}
	return out, nil
}

// compareEntries compares a serialized FLB table with the expected one.
func compareEntries(got, want []check.Entry) error {
	var errs []error
	byName := map[string]check.Entry{}
	for _, e := range got {
		byName[e.Name] = e
	}
	for _, w := range want {
		g, ok := byName[w.Name]
		switch {
		case !ok:
			errs = append(errs, finding(LosesFLBState, "FLB %q missing from the table", w.Name))
		case g != w:
			errs = append(errs, fmt.Errorf("FLB %q: table has data %#x count %d, expected data %#x count %d", w.Name, g.Data, g.Count, w.Data, w.Count))
		}
		delete(byName, w.Name)
	}
	for name := range byName {
		errs = append(errs, fmt.Errorf("FLB %q in the table but never preserved", name))
	}
	return errors.Join(errs...)
}

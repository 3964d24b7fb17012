package sim

import (
	"errors"
	"fmt"

	"github.com/kho-sim/kho-sim/internal/check"
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/luo"
	"github.com/kho-sim/kho-sim/pkg/meta"
)

// checkLUO reads the incoming LUO state with pkg/luo's decoder, as the
// generation the handover is read as (the same reader inspect and the
// guest use), and compares it with what the metadata says was handed
// over. What is wrong with the state itself is reported alone: against
// the metadata only a state without such findings is compared.
func (b *boot) checkLUO() error {
	h := luo.Decode(b.in, luo.DecodeOptions{Generation: b.inABI.OrDefault()})
	if len(h.Findings) > 0 {
		return joinFindings(h.Findings)
	}
	var kexec *kho.KexecMetadata
	var findings []kernel.Finding
	if b.in.Compatible() == kho.CompatibleV4 {
		m, err := b.in.KexecMetadata()
		if err != nil {
			findings = append(findings, h.Generation.Find(meta.WhereKexec, kernel.IgnoresMetadata, "%v", err))
		} else {
			kexec = &m
		}
	}
	return joinFindings(append(findings, b.inMeta.Check(h, kexec)...))
}

// joinFindings is the findings as one error, nil for none; errors.As
// finds the first.
func joinFindings(fs []kernel.Finding) error {
	errs := make([]error, len(fs))
	for i, f := range fs {
		errs[i] = f
	}
	return errors.Join(errs...)
}

// checkTable hands the FLB table read back to the checker and compares it
// with the FLBs that are live.
func (b *boot) checkTable(entries []luo.FLBEntry) error {
	var got []check.Entry
	for _, e := range entries {
		got = append(got, check.Entry{Name: e.Name, Data: e.Data, Count: e.Count})
	}
	b.chk.Serialized(got)
	var want []meta.FLB
	for _, f := range b.liveFLBs() {
		want = append(want, meta.FLB{Name: f.Name, Data: f.Data, Count: f.Count})
	}
	if err := joinFindings(meta.CompareFLBs(b.abi(), entries, want)); err != nil {
		return fmt.Errorf("FLB table read back: %w", err)
	}
	return nil
}

package sim

import (
	"bytes"
	"fmt"
	"maps"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/internal/check"
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/luo"
)

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return string(b[:i])
	}
	return string(b)
}

// abi is the generation this boot's kernel writes.
func (b *boot) abi() kernel.Generation { return b.cfg.ABI.OrDefault() }

// readABI is the generation this boot's kernel expects to read.
func (b *boot) readABI() kernel.Generation {
	if b.cfg.ReadABI != "" {
		return b.cfg.ReadABI
	}
	return b.abi()
}

// checkGeneration compares the incoming handover's generation with the one
// this kernel reads. A mismatch is a failed result naming both and what the
// real kernel would do; the rest of the handover is then checked as the
// generation it is, and the run stops after this boot. A handover whose
// compatibles name no known generation is checked as the expected one, so
// the damage is reported where it is. It prints nothing for a 7.0 handover
// a 7.0 kernel reads, keeping the default output as it was.
func (b *boot) checkGeneration() bool {
	want := b.readABI()
	g := luo.Detect(b.in)
	b.inABI = want
	if g.Generation == "" || g.Generation == want {
		if want != kernel.V70 {
			b.t.Diag("handover generation %s", luo.Expected(want))
		}
		return true
	}
	b.inABI = g.Generation
	err := kernel.Finding{
		What: fmt.Sprintf("generation mismatch: boot %d wrote a %s handover; this boot runs %s, which reads %s",
			b.n-1, g, want.Name(), luo.Expected(want)),
		Kernel: luo.Mismatch(g, want),
	}
	b.result(false, fmt.Sprintf("the %s kernel reads the %s handover", want, g.Generation), err)
	return false
}

// newOutgoing models kho_init of this boot's generation. A 7.2 kernel
// counts kexec boots from the incoming kexec-metadata; one it cannot read
// counts as a cold boot, as kho_in_kexec_metadata leaves the count at 0.
func (b *boot) newOutgoing() (*kho.Outgoing, error) {
	opts := kho.Options{Generation: b.abi()}
	if opts.Generation == kernel.V72 {
		opts.Release = release()
		if b.in != nil {
			if m, err := b.in.KexecMetadata(); err == nil {
				opts.KexecCount = m.KexecCount
			}
		}
	}
	return kho.NewOutgoingWith(b.alloc, opts)
}

// release is the running kernel's release, what 7.2 writes as
// previous_release.
func release() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return cstr(u.Release[:])
}

// incomingLUO is the "LUO" child as luo_early_startup gets it: the LUO FDT
// of 7.0 and luo-v2, the blob-size bytes of 7.2's luo_ser.
func (b *boot) incomingLUO() ([]byte, error) {
	if b.in.Compatible() == kho.CompatibleV4 {
		return b.in.SubtreeBytes(luo.FDTKHOEntryName)
	}
	_, blob, err := b.in.SubtreeFDT(luo.FDTKHOEntryName)
	return blob, err
}

// publishLUO adds the outgoing LUO state to KHO: an FDT, or in 7.2 the raw
// struct luo_ser.
func (b *boot) publishLUO(pa uint64) error {
	if b.abi() == kernel.V72 {
		return b.out.AddBlob(luo.FDTKHOEntryName, pa, luo.SerSize)
	}
	return b.out.AddSubtree(luo.FDTKHOEntryName, pa)
}

// luoDesc describes the incoming LUO check of the generation.
func (b *boot) luoDesc() string {
	switch b.inABI.OrDefault() {
	case kernel.LUOv2:
		return "LUO FDT, luo_ser and FLB table match what the previous boot preserved"
	case kernel.V72:
		return "LUO blob, session and file blocks, FLB table and kexec-metadata match what the previous boot preserved"
	}
	return "LUO FDT and FLB table match what the previous boot preserved"
}

// checkOutgoingTable reads back the FLB table the model wrote, through the
// handover whose root was just written, with pkg/luo's decoder, as the
// next kernel will find it, and hands it to the checker.
func (b *boot) checkOutgoingTable(root uint64) error {
	in, err := kho.ReadIncoming(b.cfg.Region, root)
	if err != nil {
		return fmt.Errorf("outgoing handover: %w", err)
	}
	h := luo.Decode(in, luo.DecodeOptions{Generation: b.abi()})
	if h.FLB == nil {
		return fmt.Errorf("outgoing FLB table: %w", joinFindings(h.Findings))
	}
	var findings []kernel.Finding
	for _, f := range h.Findings {
		if f.Where == luo.WhereFLB {
			findings = append(findings, f)
		}
	}
	if len(findings) > 0 {
		return joinFindings(findings)
	}
	return b.checkTable(h.FLB.Entries)
}

// liveFLBs lists the FLBs whose state this boot hands over, by name, as
// the table must hold them.
func (b *boot) liveFLBs() []check.Entry {
	var want []check.Entry
	for _, name := range slices.Sorted(maps.Keys(b.flbs)) {
		if f := b.flbs[name]; f.live {
			want = append(want, check.Entry{Name: f.compat, Data: f.data, Count: uint64(f.files)})
		}
	}
	return want
}

package sim

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/pkg/check"
	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/luo"
)

// ABI is a kernel generation: the handover it writes and the one it
// expects to read. The FLB model is the same in all; only the image differs.
type ABI string

// The generations kho-sim writes and reads.
const (
	// ABI70 is Linux 7.0: KHO "kho-v1" (bitmap chunks), the LUO FDT
	// "luo-v1" with luo-session and luo-flb nodes. The default.
	ABI70 ABI = "7.0"
	// ABILUOv2 is the first step of the "Remove limits on sessions and
	// files" series: KHO "kho-v1", the LUO FDT "luo-v2" whose
	// luo-abi-header points at struct luo_ser; 7.0's session and file blocks.
	ABILUOv2 ABI = "luo-v2"
	// ABI72 is Linux 7.2: KHO "kho-v4" (radix tree, blob children,
	// kexec-metadata), the raw "luo-v5" struct luo_ser, linked session and
	// file blocks.
	ABI72 ABI = "7.2"
)

// ABIs lists the generations, oldest first.
func ABIs() []ABI { return []ABI{ABI70, ABILUOv2, ABI72} }

// ParseABI reads a generation name; "" is the default, 7.0.
func ParseABI(s string) (ABI, error) {
	if s == "" {
		return ABI70, nil
	}
	for _, a := range ABIs() {
		if string(a) == s {
			return a, nil
		}
	}
	return "", fmt.Errorf("ABI generation %q: want one of %s: %w", s, abiNames(), unix.EINVAL)
}

// ParseABIList reads a comma-separated list of generations; boot n of a
// run uses entry (n-1) mod len. "" is the default, 7.0; an empty entry in a
// list is an error.
func ParseABIList(s string) ([]ABI, error) {
	if s == "" {
		return []ABI{ABI70}, nil
	}
	var out []ABI
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			return nil, fmt.Errorf("ABI generations %q: an empty entry: want one of %s: %w", s, abiNames(), unix.EINVAL)
		}
		a, err := ParseABI(f)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

func abiNames() string {
	var n []string
	for _, a := range ABIs() {
		n = append(n, string(a))
	}
	return strings.Join(n, ", ")
}

func (a ABI) orDefault() ABI {
	if a == "" {
		return ABI70
	}
	return a
}

// KHOFormat is the KHO handover format of the generation.
func (a ABI) KHOFormat() kho.Format {
	if a == ABI72 {
		return kho.FormatV4
	}
	return kho.FormatV1
}

// LUOFormat is the LUO image format of the generation.
func (a ABI) LUOFormat() luo.Format {
	switch a {
	case ABILUOv2:
		return luo.FormatV2
	case ABI72:
		return luo.FormatV5
	}
	return luo.FormatV1
}

// Kernel names a kernel of the generation in a sentence.
func (a ABI) Kernel() string {
	switch a.orDefault() {
	case ABILUOv2:
		return "a kernel with the luo-v2 LUO ABI"
	case ABI72:
		return "Linux 7.2"
	}
	return "Linux 7.0"
}

// say rewords one of the 7.0 kernel actions for the generation's kernel.
func (a ABI) say(k KernelAction) KernelAction {
	switch a.orDefault() {
	case ABILUOv2:
		return KernelAction(strings.Replace(string(k), "the 7.0 kernel", "a luo-v2 kernel", 1))
	case ABI72:
		return KernelAction(strings.Replace(string(k), "the 7.0 kernel", "the 7.2 kernel", 1))
	}
	return k
}

// Generation is what a handover's compatible strings say it is.
type Generation struct {
	KHO string // the root FDT's compatible
	LUO string // the "LUO" child's compatible; "" when there is none to read
	ABI ABI    // the generation these name; "" when they name none kho-sim knows
}

func (g Generation) String() string {
	name := string(g.ABI)
	if name == "" {
		name = "unknown generation"
	}
	return fmt.Sprintf("%s (KHO %q, LUO %q)", name, g.KHO, g.LUO)
}

// DetectGeneration recognises a handover KHO accepted from its compatible
// strings: the root's, then the "LUO" child's (an FDT's root compatible in
// kho-v1, the first 8 bytes of the blob in kho-v4).
func DetectGeneration(in *kho.Incoming) Generation {
	g := Generation{KHO: string(in.Format())}
	if in.Format() == kho.FormatV4 {
		blob, err := in.SubtreeBytes(luo.FDTKHOEntryName)
		if err != nil || len(blob) < luo.SerCompatLen {
			return g
		}
		g.LUO = cstr(blob[:luo.SerCompatLen])
		if g.LUO == luo.SerCompatible {
			g.ABI = ABI72
		}
		return g
	}
	t, _, err := in.SubtreeFDT(luo.FDTKHOEntryName)
	if err != nil {
		return g
	}
	g.LUO, _ = t.Root.String("compatible")
	switch g.LUO {
	case luo.FDTCompatible:
		g.ABI = ABI70
	case luo.FDTCompatibleV2:
		g.ABI = ABILUOv2
	}
	return g
}

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return string(b[:i])
	}
	return string(b)
}

// expected names what a kernel of the generation reads.
func (a ABI) expected() Generation {
	g := Generation{KHO: string(a.KHOFormat()), LUO: string(a.LUOFormat()), ABI: a}
	return g
}

// MismatchAction says what a real kernel of generation reader does with a
// handover of generation g. A different KHO root never gets past
// kho_populate: KHO revival is disabled and the kernel boots as if cold, all
// preserved state lost. The same root with a different LUO child fails
// luo_early_startup with EINVAL, and liveupdate_early_init panics
// (luo_restore_fail) in 7.0, the luo-v2 step and 7.2 alike.
func MismatchAction(g Generation, reader ABI) KernelAction {
	reader = reader.orDefault()
	want := reader.expected()
	if g.KHO != want.KHO {
		return KernelAction(fmt.Sprintf("%s rejects the KHO root %q in kho_populate (incompatible with %q) and disables KHO revival: it boots without the handover and every preserved file and FLB state is lost",
			reader.Kernel(), g.KHO, want.KHO))
	}
	if reader == ABI72 {
		return KernelAction(fmt.Sprintf("%s rejects the LUO blob %q (LUO state is incompatible with %q: EINVAL) and panics at boot (liveupdate_early_init, luo_restore_fail)",
			reader.Kernel(), g.LUO, want.LUO))
	}
	also := ""
	if reader == ABI70 && g.ABI == ABILUOv2 {
		also = ", and the FDT has no luo-flb node either"
	}
	return KernelAction(fmt.Sprintf("%s finds the LUO FDT %q, not %q (luo_early_startup: EINVAL%s) and panics at boot (liveupdate_early_init, luo_restore_fail)",
		reader.Kernel(), g.LUO, want.LUO, also))
}

// abi is the generation this boot's kernel writes.
func (b *boot) abi() ABI { return b.cfg.ABI.orDefault() }

// readABI is the generation this boot's kernel expects to read.
func (b *boot) readABI() ABI {
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
	g := DetectGeneration(b.in)
	b.inABI = want
	if g.ABI == "" || g.ABI == want {
		if want != ABI70 {
			b.t.Diag("handover generation %s", want.expected())
		}
		return true
	}
	b.inABI = g.ABI
	err := Finding{
		What: fmt.Sprintf("generation mismatch: boot %d wrote a %s handover; this boot runs %s, which reads %s",
			b.n-1, g, want.Kernel(), want.expected()),
		Kernel: MismatchAction(g, want),
	}
	b.result(false, fmt.Sprintf("the %s kernel reads the %s handover", want, g.ABI), err)
	return false
}

// newOutgoing models kho_init of this boot's generation. A 7.2 kernel
// counts kexec boots from the incoming kexec-metadata; one it cannot read
// counts as a cold boot, as kho_in_kexec_metadata leaves the count at 0.
func (b *boot) newOutgoing() (*kho.Outgoing, error) {
	opts := kho.Options{Format: b.abi().KHOFormat()}
	if opts.Format == kho.FormatV4 {
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
	if b.in.Format() == kho.FormatV4 {
		return b.in.SubtreeBytes(luo.FDTKHOEntryName)
	}
	_, blob, err := b.in.SubtreeFDT(luo.FDTKHOEntryName)
	return blob, err
}

// publishLUO adds the outgoing LUO state to KHO: an FDT, or in 7.2 the raw
// struct luo_ser.
func (b *boot) publishLUO(pa uint64) error {
	if b.abi() == ABI72 {
		return b.out.AddBlob(luo.FDTKHOEntryName, pa, luo.SerSize)
	}
	return b.out.AddSubtree(luo.FDTKHOEntryName, pa)
}

// luoDesc describes the incoming LUO check of the generation.
func (b *boot) luoDesc() string {
	switch b.inABI.orDefault() {
	case ABILUOv2:
		return "LUO FDT, luo_ser and FLB table match what the previous boot preserved"
	case ABI72:
		return "LUO blob, session and file blocks, FLB table and kexec-metadata match what the previous boot preserved"
	}
	return "LUO FDT and FLB table match what the previous boot preserved"
}

// checkOutgoingTable reads back the FLB table the model wrote at reboot,
// found through the outgoing LUO state as the next kernel will find it, and
// hands it to the checker.
func (b *boot) checkOutgoingTable() error {
	find := b.outFLBPage
	if b.abi() != ABI70 {
		find = b.outFLBPageGen
	}
	return b.checkTable(find)
}

// checkTable reads the FLB table from the page that find locates.
func (b *boot) checkTable(find func() ([]byte, error)) error {
	page, err := find()
	if err != nil {
		return err
	}
	entries, err := ReadFLBTable(page)
	if err != nil {
		return err
	}
	b.chk.Serialized(entries)
	var want []check.Entry
	for _, name := range slices.Sorted(maps.Keys(b.flbs)) {
		if f := b.flbs[name]; f.live {
			want = append(want, check.Entry{Name: f.compat, Data: f.data, Count: uint64(f.files)})
		}
	}
	if err := compareEntriesAs(b.abi(), entries, want); err != nil {
		return fmt.Errorf("FLB table read back: %w", err)
	}
	return nil
}

// outFLBPageGen follows the outgoing luo-v2 FDT or 7.2 blob to the FLB page.
func (b *boot) outFLBPageGen() ([]byte, error) {
	r := b.cfg.Region
	serPA := b.luoPA
	if b.abi() == ABILUOv2 {
		t, err := b.outLUOFDT()
		if err != nil {
			return nil, err
		}
		if serPA, err = t.Root.U64(luo.FDTABIHeader); err != nil {
			return nil, fmt.Errorf("outgoing LUO FDT: %w", err)
		}
	}
	format := b.abi().LUOFormat()
	raw, err := r.Bytes(serPA, serSize(format))
	if err != nil {
		return nil, fmt.Errorf("outgoing luo_ser: %w", err)
	}
	ser, err := luo.ParseSer(format, raw)
	if err != nil {
		return nil, err
	}
	if ser.FLBsPA == 0 {
		return nil, errors.New("outgoing luo_ser has no FLB page")
	}
	return r.Bytes(ser.FLBsPA, luo.FLBPageSize)
}

func serSize(f luo.Format) uint64 {
	if f == luo.FormatV5 {
		return luo.SerSize
	}
	return luo.SerV2Size
}

// losesFLBState reports whether k is LosesFLBState in any generation's words.
func losesFLBState(k KernelAction) bool {
	for _, a := range ABIs() {
		if k == a.say(LosesFLBState) {
			return true
		}
	}
	return false
}

// luoNoun names the "LUO" child of the generation: an FDT, or 7.2's blob.
func luoNoun(a ABI) string {
	if a == ABI72 {
		return "LUO blob"
	}
	return "LUO FDT"
}

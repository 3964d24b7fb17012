package sim

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/kho-sim/kho-sim/pkg/check"
	"github.com/kho-sim/kho-sim/pkg/fdt"
	"github.com/kho-sim/kho-sim/pkg/flb"
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/luo"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

func finding(g kernel.Generation, a kernel.Action, format string, args ...any) error {
	return g.Find("", a, format, args...)
}

// checkLUO reads the LUO state and the FLB table with kho-sim's own strict
// reader, in the generation the handover is, and compares them with what
// the metadata says was handed over.
func (b *boot) checkLUO() error {
	switch b.inABI.OrDefault() {
	case kernel.LUOv2:
		return b.checkLUOv2()
	case kernel.V72:
		return b.checkLUO72()
	}
	t, _, err := b.in.SubtreeFDT(luo.FDTKHOEntryName)
	if err != nil {
		return finding(kernel.V70, kernel.PanicsAtBoot, "LUO FDT: %v", err)
	}
	r := t.Root
	if !r.IsCompatible(luo.FDTCompatible) {
		c, _ := r.String("compatible")
		return finding(kernel.V70, kernel.PanicsAtBoot, "LUO FDT compatible %q, want %q", c, luo.FDTCompatible)
	}
	num, err := r.U64(luo.FDTLiveupdateNum)
	if err != nil {
		return finding(kernel.V70, kernel.PanicsAtBoot, "LUO FDT: %v", err)
	}
	if num != b.inMeta.LUONumber {
		return finding("", kernel.NoAction, "liveupdate-number %d, want %d (one more per hop, 1 after a cold boot)", num, b.inMeta.LUONumber)
	}
	if err := checkNode(r, luo.FDTSessionNode, luo.FDTSessionCompatible, luo.FDTSessionHeader); err != nil {
		return err
	}
	if err := checkNode(r, luo.FDTFLBNode, luo.FDTFLBCompatible, luo.FDTFLBHeader); err != nil {
		return err
	}
	pa, _ := r.Child(luo.FDTFLBNode).U64(luo.FDTFLBHeader)
	return b.checkFLBPage(pa)
}

// checkFLBPage checks the incoming FLB page at pa and its entries' data,
// and compares the table with the metadata's.
func (b *boot) checkFLBPage(pa uint64) error {
	g := b.inABI
	page, err := b.in.Map(pa, luo.FLBPageSize)
	if err != nil {
		return finding(g, kernel.UsesBadAddress, "FLB page %#x: %v", pa, err)
	}
	entries, err := ReadFLBTable(page)
	if err != nil {
		var f kernel.Finding
		if errors.As(err, &f) {
			f.Kernel = g.Does(f.Action)
			return f
		}
		return err
	}
	for i, e := range entries {
		switch _, err := b.in.Map(e.Data, 1); {
		case errors.Is(err, physmem.ErrOutOfRegion):
			return finding(g, kernel.UsesBadAddress, "FLB entry %d (%s): data %#x lies outside the region %#x-%#x", i, e.Name, e.Data, b.cfg.Region.Base(), b.cfg.Region.End()-1)
		case errors.Is(err, kho.ErrNotPreserved):
			return finding(g, kernel.UsesUnpreserved, "FLB entry %d (%s): data %#x is not in the preserved-memory map", i, e.Name, e.Data)
		}
	}
	return compareEntriesAs(b.inABI, entries, b.inEntries())
}

// checkNode checks a LUO subnode's compatible and its u64 header property.
func checkNode(r *fdt.Node, name, compat, prop string) error {
	n := r.Child(name)
	if n == nil {
		return finding(kernel.V70, kernel.PanicsAtBoot, "LUO FDT has no %s node", name)
	}
	if !n.IsCompatible(compat) {
		c, _ := n.String("compatible")
		return finding(kernel.V70, kernel.PanicsAtBoot, "%s compatible %q, want %q", name, c, compat)
	}
	if _, err := n.U64(prop); err != nil {
		return finding(kernel.V70, kernel.PanicsAtBoot, "%s: %v", name, err)
	}
	return nil
}

// ReadFLBTable decodes an FLB page strictly: the count must fit the page
// and LUO_FLB_MAX, pgcnt must be 1, and every name must end within its
// 48 bytes. The 7.0 kernel checks none of this.
func ReadFLBTable(page []byte) ([]check.Entry, error) {
	pgcnt, count, err := flb.ReadHeader(page)
	if err != nil {
		return nil, finding(kernel.V70, kernel.ReadsPastPage, "FLB header: %v", err)
	}
	if pgcnt != flb.PageCount {
		return nil, finding(kernel.V70, kernel.ReadsPastPage, "FLB header pgcnt %d, want %d", pgcnt, flb.PageCount)
	}
	if count > flb.Max {
		return nil, finding(kernel.V70, kernel.ReadsPastPage, "FLB header count %d above LUO_FLB_MAX %d (one page of pgcnt holds %d entries)", count, flb.Max, flb.Max)
	}
	var out []check.Entry
	for i := range int(count) {
		e, err := flb.ReadEntry(page, i)
		if err != nil {
			return nil, finding(kernel.V70, kernel.ReadsPastPage, "FLB entry %d: %v", i, err)
		}
		name, ok := e.NameString()
		if !ok {
			return nil, finding(kernel.V70, kernel.ReadsPastPage, "FLB entry %d: name %q has no NUL in its %d bytes (strcmp runs past it)", i, name, flb.NameLen)
		}
		out = append(out, check.Entry{Name: name, Data: e.Data, Count: e.Count})
	}
	return out, nil
}

// compareEntries compares a serialized FLB table with the expected one.
func compareEntries(got, want []check.Entry) error { return compareEntriesAs(kernel.V70, got, want) }

// compareEntriesAs is compareEntries with the kernel actions of g.
func compareEntriesAs(gen kernel.Generation, got, want []check.Entry) error {
	var errs []error
	byName := map[string]check.Entry{}
	for _, e := range got {
		byName[e.Name] = e
	}
	for _, w := range want {
		g, ok := byName[w.Name]
		switch {
		case !ok:
			errs = append(errs, finding(gen, kernel.LosesFLBState, "FLB %q missing from the table", w.Name))
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

// checkLUOv2 checks a luo-v2 handover: the FDT's compatible and
// luo-abi-header, then struct luo_ser, its liveupdate number, the session
// block and the FLB table. A zero flbs_pa means no FLB was handed over.
func (b *boot) checkLUOv2() error {
	g := kernel.LUOv2
	t, _, err := b.in.SubtreeFDT(luo.FDTKHOEntryName)
	if err != nil {
		return finding(g, kernel.PanicsAtBoot, "LUO FDT: %v", err)
	}
	r := t.Root
	if !r.IsCompatible(luo.FDTCompatibleV2) {
		c, _ := r.String("compatible")
		return finding(g, kernel.PanicsAtBoot, "LUO FDT compatible %q, want %q", c, luo.FDTCompatibleV2)
	}
	serPA, err := r.U64(luo.FDTABIHeader)
	if err != nil {
		return finding(g, kernel.PanicsAtBoot, "LUO FDT: %v", err)
	}
	raw, err := b.in.Map(serPA, luo.SerV2Size)
	if err != nil {
		return finding(g, kernel.UsesBadAddress, "luo_ser %#x: %v", serPA, err)
	}
	ser, _ := luo.ParseSer(kernel.LUOv2, raw) // Map returned SerV2Size bytes
	if err := b.checkNumber(ser.LiveupdateNum); err != nil {
		return err
	}
	if ser.SessionsPA != 0 {
		if _, err := b.in.Map(ser.SessionsPA, luo.SessionBlockSize); err != nil {
			return finding(g, kernel.UsesBadAddress, "session block %#x: %v", ser.SessionsPA, err)
		}
	}
	return b.checkFLBsPA(ser.FLBsPA)
}

// checkLUO72 checks a 7.2 handover: the luo_ser blob (size, compatible,
// liveupdate number), the session and file block chains against the files
// the metadata lists, the FLB table and the kexec-metadata.
func (b *boot) checkLUO72() error {
	g := kernel.V72
	blob, err := b.in.SubtreeBytes(luo.FDTKHOEntryName)
	if err != nil {
		return finding(g, kernel.PanicsAtBoot, "LUO blob: %v", err)
	}
	if len(blob) < luo.SerSize {
		return finding(g, kernel.PanicsAtBoot, "LUO blob of %d bytes, smaller than struct luo_ser (%d)", len(blob), luo.SerSize)
	}
	ser, _ := luo.ParseSer(kernel.V72, blob) // long enough: checked above
	if ser.Compatible != luo.SerCompatible {
		return finding(g, kernel.PanicsAtBoot, "LUO blob compatible %q, want %q", ser.Compatible, luo.SerCompatible)
	}
	if err := b.checkNumber(ser.LiveupdateNum); err != nil {
		return err
	}
	if err := b.checkSessions72(ser.SessionsPA); err != nil {
		return err
	}
	if err := b.checkFLBsPA(ser.FLBsPA); err != nil {
		return err
	}
	m, err := b.in.KexecMetadata()
	if err != nil {
		return finding(g, kernel.IgnoresMetadata, "%v", err)
	}
	if uint64(m.KexecCount) != b.inMeta.LUONumber {
		return finding("", kernel.NoAction, "kexec-metadata kexec_count %d, want %d (kexec boots since the last cold boot)", m.KexecCount, b.inMeta.LUONumber)
	}
	return nil
}

func (b *boot) checkNumber(num uint64) error {
	if num != b.inMeta.LUONumber {
		return finding("", kernel.NoAction, "liveupdate-number %d, want %d (one more per hop, 1 after a cold boot)", num, b.inMeta.LUONumber)
	}
	return nil
}

// checkFLBsPA checks the FLB table at flbs_pa; 0 is no table, which loses
// the state of every FLB the metadata says was handed over.
func (b *boot) checkFLBsPA(pa uint64) error {
	if pa != 0 {
		return b.checkFLBPage(pa)
	}
	if len(b.inMeta.FLBs) > 0 {
		return finding(b.inABI, kernel.LosesFLBState, "luo_ser flbs_pa is 0, but %d FLBs were handed over", len(b.inMeta.FLBs))
	}
	return nil
}

// readBlocks reads a 7.2 block chain strictly: every block page aligned
// and preserved, no block twice, at most luo.MaxBlocks, every count from 1
// to perBlock. It returns the entries in order. A chain 7.2 refuses at
// restore is reported with refused.
func (b *boot) readBlocks(what string, head uint64, entrySize int, refused kernel.Action) ([][]byte, error) {
	per := (luo.BlockSize - luo.BlockHeaderSize) / entrySize
	seen := map[uint64]bool{}
	var out [][]byte
	for pa := head; pa != 0; {
		if seen[pa] || len(seen) == luo.MaxBlocks {
			return nil, finding(kernel.V72, refused, "%s block chain loops back to %#x or passes %d blocks", what, pa, luo.MaxBlocks)
		}
		seen[pa] = true
		if pa%luo.BlockSize != 0 {
			return nil, finding(kernel.V72, kernel.UsesBadAddress, "%s block %#x is not page aligned", what, pa)
		}
		blk, err := b.in.Map(pa, luo.BlockSize)
		if err != nil {
			return nil, finding(kernel.V72, kernel.UsesBadAddress, "%s block %#x: %v", what, pa, err)
		}
		n := le64(blk[8:])
		if n == 0 || n > uint64(per) {
			return nil, finding(kernel.V72, refused, "%s block %#x: count %d, want 1 to %d", what, pa, n, per)
		}
		for i := range int(n) {
			out = append(out, blk[luo.BlockHeaderSize+i*entrySize:][:entrySize])
		}
		pa = le64(blk)
	}
	return out, nil
}

// checkSessions72 reads the session and file chains and compares the files
// found with the ones the metadata lists.
func (b *boot) checkSessions72(head uint64) error {
	sessions, err := b.readBlocks("session", head, luo.SessionEntrySize, kernel.PanicsAtBoot)
	if err != nil {
		return err
	}
	type key struct {
		session string
		token   uint64
	}
	found := map[key]uint64{}
	names := map[string]bool{}
	for i, e := range sessions {
		name := cstr(e[:luo.SessionNameLen])
		if len(name) == luo.SessionNameLen {
			return finding(kernel.V72, kernel.FailsOpen, "session %d: name has no NUL in its %d bytes", i, luo.SessionNameLen)
		}
		if names[name] {
			return finding(kernel.V72, kernel.FailsOpen, "session %q twice (EEXIST)", name)
		}
		names[name] = true
		files, count := le64(e[64:]), le64(e[72:])
		if files == 0 {
			if count != 0 {
				return finding(kernel.V72, kernel.WarnsNoFiles, "session %q: %d files but no file block", name, count)
			}
			continue
		}
		entries, err := b.readBlocks(fmt.Sprintf("session %q file", name), files, luo.FileEntrySize, kernel.FailsOpen)
		if err != nil {
			return err
		}
		if uint64(len(entries)) != count {
			return finding(kernel.V72, kernel.FailsOpen, "session %q: %d files in its blocks, %d in its entry (EINVAL)", name, len(entries), count)
		}
		for j, fe := range entries {
			if len(cstr(fe[:luo.HandlerCompatLen])) == luo.HandlerCompatLen {
				return finding(kernel.V72, kernel.FailsOpen, "session %q file %d: compatible has no NUL in its %d bytes", name, j, luo.HandlerCompatLen)
			}
			k := key{name, le64(fe[56:])}
			if _, dup := found[k]; dup {
				return finding("", kernel.NoAction, "session %q: token %d twice", name, k.token)
			}
			found[k] = le64(fe[48:])
		}
	}
	var errs []error
	for _, f := range b.inMeta.Files {
		k := key{f.Session, f.Token}
		data, ok := found[k]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("file %s/%d missing from the session blocks", f.Session, f.Token))
		case data != f.Data:
			errs = append(errs, fmt.Errorf("file %s/%d: data %#x in the blocks, %#x handed over", f.Session, f.Token, data, f.Data))
		}
		delete(found, k)
	}
	for k := range found {
		errs = append(errs, fmt.Errorf("file %s/%d in the session blocks but never preserved", k.session, k.token))
	}
	return errors.Join(errs...)
}

func le64(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }

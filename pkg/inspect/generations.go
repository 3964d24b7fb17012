package inspect

import (
	"fmt"

	"github.com/kho-sim/kho-sim/pkg/fdt"
	"github.com/kho-sim/kho-sim/pkg/gen72"
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/luo"
)

// luoV2 decodes the luo-v2 step's LUO FDT: luo-abi-header points at
// struct luo_ser, whose sessions_pa and flbs_pa lead to 7.0's session
// block and the FLB page (0: none).
func (d *decoder) luoV2(r *fdt.Node, l *LUO) {
	serPA, err := r.U64(luo.FDTABIHeader)
	if err != nil {
		d.find(whereLUO, kernel.PanicsAtBoot, "LUO FDT: %v", err)
		return
	}
	d.luoWhere = whereSer
	l.Ser = &Ser{PA: Hex(serPA), Size: luo.SerV2Size}
	raw, err := d.in.Map(serPA, luo.SerV2Size)
	if err != nil {
		d.find(whereSer, kernel.UsesBadAddress, "luo_ser %#x: %v", serPA, err)
		return
	}
	ser, err := luo.ParseSer(kernel.LUOv2, raw)
	if err != nil {
		d.find(whereSer, kernel.UsesBadAddress, "luo_ser %#x: %v", serPA, err)
		return
	}
	d.followSer(l, ser)
	if ser.SessionsPA != 0 {
		d.sessionBlockAt(l, ser.SessionsPA)
	}
}

func (d *decoder) followSer(l *LUO, ser luo.Ser) {
	l.LiveupdateNumber, l.SessionsPA, l.FLBsPA = ser.LiveupdateNum, Hex(ser.SessionsPA), Hex(ser.FLBsPA)
	d.luoFollowed = true
	if ser.FLBsPA != 0 {
		d.flbAt(l, ser.FLBsPA)
	}
}

// luoBlob decodes 7.2's "LUO" child, the raw struct luo_ser, as
// luo_early_startup checks it (blob-size, an 8-byte strncmp of the
// compatible), and follows it to the session chain and the FLB page.
func (d *decoder) luoBlob() {
	d.luoWhere = whereBlob
	s := d.subtree(luo.FDTKHOEntryName)
	if s == nil {
		d.note("no %s subtree: no live update state was handed over", luo.FDTKHOEntryName)
		return
	}
	if s.Kind == "" {
		return // unreadable: the subtree finding says why
	}
	blob, err := d.in.SubtreeBytes(luo.FDTKHOEntryName)
	if err != nil { // read once already; cannot fail now, but memory is untrusted
		d.find(whereBlob, kernel.PanicsAtBoot, "%v", err)
		return
	}
	l := &LUO{Ser: &Ser{PA: s.PA, Size: s.BlobSize}}
	d.rep.LUO = l
	if len(blob) < luo.SerSize {
		d.find(whereBlob, kernel.PanicsAtBoot, "LUO blob of %d bytes, smaller than struct luo_ser (%d)", len(blob), luo.SerSize)
		return
	}
	ser, _ := luo.ParseSer(kernel.V72, blob) // long enough: checked above
	l.Compatible = ser.Compatible
	if ser.Compatible != luo.SerCompatible {
		l.LiveupdateNumber, l.SessionsPA, l.FLBsPA = ser.LiveupdateNum, Hex(ser.SessionsPA), Hex(ser.FLBsPA)
		d.find(whereBlob, kernel.PanicsAtBoot, "LUO blob compatible %q, want %q (luo_early_startup: EINVAL)", ser.Compatible, luo.SerCompatible)
		return
	}
	d.followSer(l, ser)
	if ser.SessionsPA != 0 {
		l.Sessions = d.sessions72(ser.SessionsPA)
	}
}

// sessions72 decodes 7.2's session chain and each session's file chain.
func (d *decoder) sessions72(head uint64) *SessionTable {
	blocks, entries, _ := d.chain("session", head, luo.SessionEntrySize, kernel.PanicsAtBoot)
	t := &SessionTable{PA: Hex(head), Blocks: blocks, Sessions: []Session{}}
	for _, b := range blocks {
		t.Count += b.Count
	}
	first := map[string]int{}
	for i, e := range entries {
		s, where := d.session(i, e, first)
		d.files72(&s, where)
		t.Sessions = append(t.Sessions, s)
	}
	return t
}

// files72 decodes one session's file chain as 7.2's luo_file_deserialize
// reads it: restored whole or refused, then counted against the entry.
func (d *decoder) files72(s *Session, where string) {
	pa := uint64(s.FilesPA)
	if pa == 0 {
		if s.Count != 0 {
			d.find(whereSessions, kernel.WarnsNoFiles, "%s: %d files but no file block", where, s.Count)
		}
		return
	}
	blocks, entries, whole := d.chain(where+" file", pa, luo.FileEntrySize, kernel.FailsOpen)
	s.FileBlocks = blocks
	d.fileEntries(s, where, entries, kernel.FailsOpen)
	if whole && uint64(len(entries)) != s.Count {
		d.find(whereSessions, kernel.FailsOpen, "%s: %d files in its blocks, %d in its entry (luo_file_deserialize: EINVAL)", where, len(entries), s.Count)
	}
}

// chain walks a 7.2 block set (struct kho_block_header_ser {u64 next;
// u64 count} then count entries per page) leniently: what
// kho_block_set_restore refuses (a cycle, more than KHO_MAX_BLOCKS blocks,
// a count of 0 or above the block's capacity) is reported with refused,
// and the walk goes on past a bad count without reading that block's
// entries; a block that is not page aligned or not preserved ends it.
// whole is false when anything was wrong.
func (d *decoder) chain(what string, head uint64, entrySize int, refused kernel.Action) (blocks []Block, entries [][]byte, whole bool) {
	per := uint64((luo.BlockSize - luo.BlockHeaderSize) / entrySize)
	blocks, whole = []Block{}, true
	seen := map[uint64]bool{}
	for pa := head; pa != 0; {
		switch {
		case seen[pa]:
			d.find(whereSessions, refused, "%s block chain loops back to %#x (kho_block_set_restore: EINVAL)", what, pa)
			return blocks, entries, false
		case len(seen) == luo.MaxBlocks:
			d.find(whereSessions, refused, "%s block chain has more than KHO_MAX_BLOCKS %d blocks (kho_block_set_restore: EINVAL)", what, luo.MaxBlocks)
			return blocks, entries, false
		case d.blocksLeft == 0:
			d.find(whereSessions, kernel.NoAction, "%s blocks not read: the handover's chains pass %d blocks, which inspect and gen72 read at most", what, gen72.MaxBlocksTotal)
			return blocks, entries, false
		case pa%luo.BlockSize != 0:
			d.find(whereSessions, kernel.UsesBadAddress, "%s block %#x is not page aligned", what, pa)
			return blocks, entries, false
		}
		seen[pa] = true
		d.blocksLeft--
		blk, err := d.in.Map(pa, luo.BlockSize)
		if err != nil {
			d.find(whereSessions, kernel.UsesBadAddress, "%s block %#x: %v", what, pa, err)
			return blocks, entries, false
		}
		n := le.Uint64(blk[8:])
		blocks = append(blocks, Block{PA: Hex(pa), Count: n})
		if n == 0 || n > per {
			d.find(whereSessions, refused, "%s block %#x: count %d, want 1 to %d (kho_block_set_restore: EINVAL)", what, pa, n, per)
			whole = false
			n = 0 // 7.2 reads no entry of a set it refuses; these would be guesses
		}
		for i := range int(n) {
			entries = append(entries, blk[luo.BlockHeaderSize+i*entrySize:][:entrySize])
		}
		pa = le.Uint64(blk)
	}
	return blocks, entries, whole
}

// kexecMetadata decodes 7.2's kexec-metadata child with pkg/kho's strict
// reader.
func (d *decoder) kexecMetadata() {
	s := d.subtree(kho.KexecMetadataName)
	if s == nil {
		d.note("no %s subtree: the previous kernel handed over no kexec count or release", kho.KexecMetadataName)
		return
	}
	if s.Kind == "" {
		return // unreadable: the subtree finding says why
	}
	m, err := d.in.KexecMetadata()
	if err != nil {
		d.find(whereKexec, kernel.IgnoresMetadata, "%v", err)
		return
	}
	d.rep.KexecMetadata = &KexecMetadata{PA: s.PA, Size: s.BlobSize, Version: m.Version, PreviousRelease: m.PreviousRelease, KexecCount: m.KexecCount}
}

// strict72 runs pkg/gen72, the strict reader of real 7.2 handovers, over
// a kho-v4 handover in which Decode found nothing wrong: it also refuses
// what neither 7.2 nor Decode looks for (a page that serves two
// structures, an FLB with count 0, liveupdate number 0, ...).
func (d *decoder) strict72() {
	if d.in.Compatible() != kho.CompatibleV4 || len(d.rep.Findings) > 0 {
		return
	}
	if _, err := gen72.Decode(d.r, uint64(d.rep.KHO.PA), uint64(d.rep.KHO.Size)); err != nil {
		d.find(whereStrict, kernel.NoAction, "%v", err)
	}
}

// describe names the LUO state's layout for the text output.
func (l *LUO) describe() string {
	switch {
	case l.Ser == nil:
		return "LUO FDT"
	case l.Compatible == luo.FDTCompatibleV2:
		return fmt.Sprintf("LUO FDT, luo_ser at %#x (%d bytes)", uint64(l.Ser.PA), l.Ser.Size)
	}
	return fmt.Sprintf("LUO blob (struct luo_ser) at %#x (%d bytes)", uint64(l.Ser.PA), l.Ser.Size)
}

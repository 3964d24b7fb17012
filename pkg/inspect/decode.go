package inspect

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/kho-sim/kho-sim/pkg/fdt"
	"github.com/kho-sim/kho-sim/pkg/flb"
	"github.com/kho-sim/kho-sim/pkg/gen72"
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/luo"
	"github.com/kho-sim/kho-sim/pkg/meta"
	"github.com/kho-sim/kho-sim/pkg/payload"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// Where a finding was made (Finding.Where).
const (
	whereRoot     = "kho root"
	whereMap      = "preserved-memory map"
	whereLUO      = "LUO FDT"
	whereSer      = "luo_ser"
	whereBlob     = "LUO blob"
	whereFLB      = "FLB table"
	whereSessions = "sessions"
	whereKexec    = "kexec-metadata"
	whereMeta     = "kho-sim metadata"
	wherePayloads = "payloads"
	whereStrict   = "strict 7.2 reader"
)

var le = binary.LittleEndian

// decoder carries one Decode.
type decoder struct {
	r   *physmem.Region
	in  *kho.Incoming
	rep *Report
	// abi is the generation whose kernel the findings speak of: the one
	// the compatibles name, else the KHO root's (kho-v4: 7.2, else 7.0).
	abi kernel.Generation
	// luoWhere is where the LUO state's own fields are reported, and
	// luoFollowed says they were good enough to follow to the blocks.
	luoWhere    string
	luoFollowed bool
	// blocksLeft bounds the 7.2 chain blocks read over the whole handover,
	// as gen72 bounds them, so shared blocks cannot multiply the work.
	blocksLeft int
}

// Decode reads the handover whose KHO root FDT is at rootPA in r, in
// whichever generation its compatibles name (kho-v1 with a luo-v1 or
// luo-v2 LUO FDT, kho-v4 with a luo-v5 blob). It never fails: whatever
// cannot be read or is wrong becomes a Finding, and decoding goes on
// wherever the rest does not depend on it. Memory is untrusted: every
// address, count and string is checked, and beyond the root FDT and the
// memory map only pages the preserved-memory map lists are read
// (kho.Incoming.Map). When no root FDT exists at rootPA, Report.KHO is nil
// and RootError says why.
func Decode(r *physmem.Region, rootPA uint64) *Report {
	d := &decoder{r: r, abi: kernel.V70, blocksLeft: gen72.MaxBlocksTotal, rep: &Report{
		Schema: SchemaVersion, RootPA: Hex(rootPA),
		Subtrees: []Subtree{}, Notes: []string{}, Findings: []kernel.Finding{},
	}}
	if r == nil {
		d.find(whereRoot, kernel.NoAction, "no FDT at %#x: no memory to read", rootPA)
		return d.rep
	}
	d.rep.Region = Span{Start: Hex(r.Base()), Size: r.Size()}
	root := d.root(rootPA)
	if root == nil {
		return d.rep
	}
	d.rep.Generation = &Generation{KHO: d.rep.KHO.Compatible}
	v4 := root.Root.IsCompatible(kho.CompatibleV4)
	if v4 {
		d.abi = kernel.V72
	}
	if d.rootUsable(root) {
		in, err := kho.ReadIncoming(r, rootPA)
		if err != nil {
			d.find(whereMap, kernel.NoAction, "%v", err)
		}
		d.in = in
	}
	if d.in == nil {
		d.note("nothing past the root FDT was read: without a valid preserved-memory map no page is known to be preserved")
		d.listChildren(root, v4)
		return d.rep
	}
	d.generation()
	d.memory()
	trees := d.subtrees()
	if d.in.Compatible() == kho.CompatibleV4 {
		d.luoBlob()
		d.kexecMetadata()
	} else {
		d.luoFDT(trees[luo.FDTKHOEntryName])
	}
	d.meta(trees[meta.Name])
	d.strict72()
	return d.rep
}

// find records a finding, a being what the kernel of the handover's
// generation does.
func (d *decoder) find(where string, a kernel.Action, format string, args ...any) {
	d.rep.Findings = append(d.rep.Findings, d.abi.Find(where, a, format, args...))
}

func (d *decoder) note(format string, args ...any) {
	d.rep.Notes = append(d.rep.Notes, fmt.Sprintf(format, args...))
}

// root reads the root FDT straight from the region: its address comes from
// the command line, not from preserved memory.
func (d *decoder) root(pa uint64) *fdt.Tree {
	hdr, err := d.r.Bytes(pa, 40)
	if err != nil {
		d.find(whereRoot, kernel.NoAction, "no FDT at %#x: outside the region %v", pa, d.r.Range())
		return nil
	}
	size, err := fdt.TotalSize(hdr)
	if err != nil {
		d.find(whereRoot, kernel.NoAction, "no FDT at %#x: %s", pa, parseReason(err))
		return nil
	}
	if size > kho.MaxFDTSize {
		d.find(whereRoot, kernel.DisablesRevival, "root FDT at %#x: totalsize %d above the %d bytes a root may have", pa, size, kho.MaxFDTSize)
		return nil
	}
	blob, err := d.r.Bytes(pa, uint64(size))
	if err != nil {
		d.find(whereRoot, kernel.DisablesRevival, "root FDT at %#x: totalsize %d runs past the region's end %#x", pa, size, d.r.End())
		return nil
	}
	t, err := fdt.Parse(blob)
	if err != nil {
		d.find(whereRoot, kernel.DisablesRevival, "root FDT at %#x: %s", pa, parseReason(err))
		return nil
	}
	compat, _ := t.Root.Prop("compatible")
	mapPA, _ := t.Root.U64(kho.PropMemoryMap)
	d.rep.KHO = &KHORoot{PA: Hex(pa), Size: size, Compatible: cstring(compat), MemoryMapPA: Hex(mapPA), DTS: dts(t)}
	return t
}

// rootUsable checks what kho_populate checks of the root in 7.0 and 7.2,
// and says whether the memory map is worth reading.
func (d *decoder) rootUsable(t *fdt.Tree) bool {
	ok := true
	if !t.Root.IsCompatible(kho.Compatible) && !t.Root.IsCompatible(kho.CompatibleV4) {
		d.find(whereRoot, kernel.DisablesRevival, "root FDT compatible %q, want %q or %q", d.rep.KHO.Compatible, kho.Compatible, kho.CompatibleV4)
		ok = false
	}
	mapPA, err := t.Root.U64(kho.PropMemoryMap)
	switch {
	case err != nil:
		d.find(whereRoot, kernel.DisablesRevival, "root FDT: %v", err)
		ok = false
	case mapPA == 0:
		d.find(whereRoot, kernel.DisablesRevival, "root FDT has an empty %s: nothing was preserved", kho.PropMemoryMap)
		ok = false
	}
	return ok
}

// listChildren records the root's children when their data cannot be read.
func (d *decoder) listChildren(t *fdt.Tree, v4 bool) {
	for _, c := range t.Root.Children {
		s := Subtree{Name: c.Name}
		if v4 {
			pa, _ := c.U64(kho.PropBlobData)
			s.PA = Hex(pa)
			s.BlobSize, _ = c.U64(kho.PropBlobSize)
		} else {
			pa, _ := c.U64(kho.PropSubFDT)
			s.PA = Hex(pa)
		}
		d.rep.Subtrees = append(d.rep.Subtrees, s)
	}
}

// generation names the handover from its compatibles as pkg/sim does, and
// picks whose kernel the findings speak of.
func (d *decoder) generation() {
	g := luo.Detect(d.in)
	d.rep.Generation = &Generation{Name: string(g.Generation), KHO: g.KHO, LUO: g.LUO}
	if g.Generation != "" {
		d.abi = g.Generation
	}
}

func (d *decoder) memory() {
	m := &Memory{Encoding: EncodingBitmaps, Ranges: []MemRange{}}
	if d.in.Compatible() == kho.CompatibleV4 {
		m.Encoding = EncodingRadix
	}
	for _, b := range d.in.Blocks() {
		m.Blocks++
		m.Bytes += b.Size()
	}
	for _, rg := range d.in.Ranges() {
		m.Ranges = append(m.Ranges, MemRange{Start: Hex(rg.Start), End: Hex(rg.End()), Size: rg.Size, Pages: rg.Size / physmem.PageSize})
	}
	d.rep.Memory = m
}

// subtrees reads every child and returns the FDTs among them by name.
func (d *decoder) subtrees() map[string]*fdt.Tree {
	trees := map[string]*fdt.Tree{}
	for _, name := range d.in.SubtreeNames() {
		s := Subtree{Name: name}
		var err error
		if d.in.Compatible() == kho.CompatibleV4 {
			err = d.blobSubtree(&s, trees)
		} else {
			err = d.fdtSubtree(&s, trees)
		}
		if err != nil {
			var k kernel.Action
			if name == luo.FDTKHOEntryName {
				k = kernel.PanicsAtBoot
			}
			d.find("subtree "+name, k, "%v", err)
		}
		d.rep.Subtrees = append(d.rep.Subtrees, s)
	}
	return trees
}

// fdtSubtree reads a kho-v1 child: "fdt" and the FDT there.
func (d *decoder) fdtSubtree(s *Subtree, trees map[string]*fdt.Tree) error {
	pa, err := d.in.Subtree(s.Name)
	if err != nil {
		return err
	}
	s.PA = Hex(pa)
	t, blob, err := d.in.SubtreeFDT(s.Name)
	if err != nil {
		return err
	}
	d.setFDT(s, t, blob)
	trees[s.Name] = t
	return nil
}

// blobSubtree reads a kho-v4 child: "preserved-data" and "blob-size", and
// the blob, parsed as an FDT when it starts with the FDT magic.
func (d *decoder) blobSubtree(s *Subtree, trees map[string]*fdt.Tree) error {
	pa, size, err := d.in.SubtreeBlob(s.Name)
	if err != nil {
		return err
	}
	s.PA, s.BlobSize = Hex(pa), size
	blob, err := d.in.SubtreeBytes(s.Name)
	if err != nil {
		return err
	}
	if len(blob) >= 4 && binary.BigEndian.Uint32(blob) == fdt.Magic {
		t, fdtBlob, err := d.in.SubtreeFDT(s.Name)
		if err != nil {
			return err
		}
		d.setFDT(s, t, fdtBlob)
		trees[s.Name] = t
		return nil
	}
	s.Kind, s.Size, s.Hex = KindBlob, len(blob), hex.EncodeToString(blob[:min(len(blob), MaxBlobHex)])
	return nil
}

func (d *decoder) setFDT(s *Subtree, t *fdt.Tree, blob []byte) {
	compat, _ := t.Root.Prop("compatible")
	s.Kind, s.Size, s.Compatible, s.DTS = KindFDT, len(blob), cstring(compat), dts(t)
}

// subtree returns the child called name as the report has it, or nil.
func (d *decoder) subtree(name string) *Subtree {
	for i := range d.rep.Subtrees {
		if d.rep.Subtrees[i].Name == name {
			return &d.rep.Subtrees[i]
		}
	}
	return nil
}

func (d *decoder) hasChild(name string) bool { return d.subtree(name) != nil }

// luoFDT decodes a kho-v1 handover's LUO FDT: luo-v1's session and FLB
// nodes, or luo-v2's luo-abi-header. A compatible that is neither is
// reported and decoded as luo-v1.
func (d *decoder) luoFDT(t *fdt.Tree) {
	d.luoWhere = whereLUO
	if t == nil {
		if !d.hasChild(luo.FDTKHOEntryName) {
			d.note("no %s subtree: no live update state was handed over", luo.FDTKHOEntryName)
		}
		return
	}
	r := t.Root
	compat, _ := r.Prop("compatible")
	l := &LUO{Compatible: cstring(compat)}
	d.rep.LUO = l
	if r.IsCompatible(luo.FDTCompatibleV2) {
		d.luoV2(r, l)
		return
	}
	if !r.IsCompatible(luo.FDTCompatible) {
		d.find(whereLUO, kernel.PanicsAtBoot, "LUO FDT compatible %q, want %q or %q", l.Compatible, luo.FDTCompatible, luo.FDTCompatibleV2)
	}
	num, err := r.U64(luo.FDTLiveupdateNum)
	if err != nil {
		d.find(whereLUO, kernel.PanicsAtBoot, "LUO FDT: %v", err)
	}
	l.LiveupdateNumber = num
	d.luoFollowed = true
	sessPA, sessOK := d.luoNode(r, luo.FDTSessionNode, luo.FDTSessionCompatible, luo.FDTSessionHeader)
	flbPA, flbOK := d.luoNode(r, luo.FDTFLBNode, luo.FDTFLBCompatible, luo.FDTFLBHeader)
	l.SessionsPA, l.FLBsPA = Hex(sessPA), Hex(flbPA)
	if flbOK {
		d.flbAt(l, flbPA)
	}
	if sessOK {
		d.sessionBlockAt(l, sessPA)
	}
}

// luoNode checks a LUO subnode as luo_session_setup_incoming and
// luo_flb_setup_incoming do (a name with a unit address matches too) and
// returns its header address.
func (d *decoder) luoNode(r *fdt.Node, name, compat, prop string) (uint64, bool) {
	n := r.Child(name)
	for _, c := range r.Children {
		if n == nil && strings.HasPrefix(c.Name, name+"@") {
			n = c
		}
	}
	if n == nil {
		d.find(whereLUO, kernel.PanicsAtBoot, "LUO FDT has no %s node", name)
		return 0, false
	}
	ok := true
	if !n.IsCompatible(compat) {
		c, _ := n.Prop("compatible")
		d.find(whereLUO, kernel.PanicsAtBoot, "%s compatible %q, want %q", name, cstring(c), compat)
		ok = false
	}
	pa, err := n.U64(prop)
	if err != nil {
		d.find(whereLUO, kernel.PanicsAtBoot, "%s: %v", name, err)
		return 0, false
	}
	return pa, ok
}

// flbAt maps and decodes the FLB page, the same in every generation.
func (d *decoder) flbAt(l *LUO, pa uint64) {
	page, err := d.in.Map(pa, luo.FLBPageSize)
	if err != nil {
		d.find(whereFLB, kernel.UsesBadAddress, "FLB page %#x: %v", pa, err)
		return
	}
	l.FLB = d.flbTable(pa, page)
}

// sessionBlockAt maps and decodes the single session block of luo-v1 and
// luo-v2.
func (d *decoder) sessionBlockAt(l *LUO, pa uint64) {
	block, err := d.in.Map(pa, luo.SessionBlockSize)
	if err != nil {
		d.find(whereSessions, kernel.UsesBadAddress, "session block %#x: %v", pa, err)
		return
	}
	l.Sessions = d.sessions(pa, block)
}

// flbTable decodes the FLB page with the checks 7.0 and 7.2 omit: pgcnt,
// the count against LUO_FLB_MAX, terminated and unique names.
func (d *decoder) flbTable(pa uint64, page []byte) *FLBTable {
	pgcnt, count, err := flb.ReadHeader(page)
	t := &FLBTable{PA: Hex(pa), PageCount: pgcnt, Count: count, Entries: []FLBEntry{}}
	if err != nil {
		d.find(whereFLB, kernel.ReadsPastPage, "FLB header: %v", err)
		return t
	}
	if pgcnt != flb.PageCount {
		d.find(whereFLB, kernel.ReadsPastPage, "FLB header pgcnt %d, want %d", pgcnt, flb.PageCount)
	}
	n := count
	if count > flb.Max {
		d.find(whereFLB, kernel.ReadsPastPage, "FLB header count %d above LUO_FLB_MAX %d", count, flb.Max)
		n = flb.Max
	}
	first := map[string]int{}
	for i := range int(n) {
		e, err := flb.ReadEntry(page, i)
		if err != nil {
			d.find(whereFLB, kernel.ReadsPastPage, "FLB entry %d: %v", i, err)
			break
		}
		name, terminated := e.NameString()
		t.Entries = append(t.Entries, FLBEntry{Index: i, Name: name, NameTerminated: terminated, Data: Hex(e.Data), Count: e.Count})
		if !terminated {
			d.find(whereFLB, kernel.ReadsPastPage, "FLB entry %d: name %q has no NUL in its %d bytes (strcmp runs past it)", i, name, flb.NameLen)
			continue
		}
		if j, dup := first[name]; dup {
			d.find(whereFLB, kernel.NoAction, "FLB entry %d repeats the name %q of entry %d; the kernel only ever finds the first", i, name, j)
			continue
		}
		first[name] = i
	}
	return t
}

// sessions decodes the luo-v1/luo-v2 session block and every session's
// file block.
func (d *decoder) sessions(pa uint64, block []byte) *SessionTable {
	count := le.Uint64(block)
	t := &SessionTable{PA: Hex(pa), Count: count, Blocks: []Block{{PA: Hex(pa), Count: count}}, Sessions: []Session{}}
	n := count
	if count > luo.SessionMax {
		d.find(whereSessions, kernel.ReadsPastBlock, "session header count %d above LUO_SESSION_MAX %d", count, luo.SessionMax)
		n = luo.SessionMax
	}
	first := map[string]int{}
	for i := range int(n) {
		s, where := d.session(i, block[luo.SessionHeaderSize+i*luo.SessionEntrySize:][:luo.SessionEntrySize], first)
		d.files(&s, where)
		t.Sessions = append(t.Sessions, s)
	}
	return t
}

// session decodes one struct luo_session_ser, the same in every
// generation, and checks its name; first maps names to their first index.
func (d *decoder) session(i int, e []byte, first map[string]int) (Session, string) {
	name, terminated := cfield(e[:luo.SessionNameLen])
	s := Session{Index: i, Name: name, NameTerminated: terminated, FilesPA: Hex(le.Uint64(e[64:])), Count: le.Uint64(e[72:]), FileBlocks: []Block{}, Files: []File{}}
	where := fmt.Sprintf("session %d %q", i, name)
	if !terminated {
		d.find(whereSessions, kernel.NoAction, "%s: name has no NUL in its %d bytes; the kernel keeps %d of them", where, luo.SessionNameLen, luo.SessionNameLen-1)
		name = name[:luo.SessionNameLen-1]
	}
	if j, dup := first[name]; dup {
		d.find(whereSessions, kernel.FailsOpen, "%s repeats the name of session %d (EEXIST)", where, j)
	} else {
		first[name] = i
	}
	return s, where
}

// files decodes one session's file block as luo_file_deserialize of 7.0
// reads it.
func (d *decoder) files(s *Session, where string) {
	pa := uint64(s.FilesPA)
	if pa == 0 {
		if s.Count != 0 {
			d.find(whereSessions, kernel.WarnsNoFiles, "%s: %d files but no file block", where, s.Count)
		}
		return
	}
	n := s.Count
	if n > luo.FileMax {
		d.find(whereSessions, kernel.ReadsPastBlock, "%s: file count %d above LUO_FILE_MAX %d", where, n, luo.FileMax)
		n = luo.FileMax
	}
	block, err := d.in.Map(pa, luo.FileBlockSize)
	if err != nil {
		d.find(whereSessions, kernel.UsesBadAddress, "%s: file block %#x: %v", where, pa, err)
		return
	}
	s.FileBlocks = append(s.FileBlocks, Block{PA: Hex(pa), Count: s.Count})
	entries := make([][]byte, n)
	for i := range entries {
		entries[i] = block[i*luo.FileEntrySize:][:luo.FileEntrySize]
	}
	d.fileEntries(s, where, entries, kernel.StopsAtFile)
}

// fileEntries decodes struct luo_file_ser entries, the same in every
// generation; unterminated is what the kernel does with a compatible that
// has no NUL.
func (d *decoder) fileEntries(s *Session, where string, entries [][]byte, unterminated kernel.Action) {
	tokens := map[uint64]int{}
	for i, e := range entries {
		compat, terminated := cfield(e[:luo.HandlerCompatLen])
		f := File{Index: i, Compatible: compat, CompatibleTerminated: terminated, Data: Hex(le.Uint64(e[48:])), Token: Hex(le.Uint64(e[56:]))}
		s.Files = append(s.Files, f)
		if !terminated {
			d.find(whereSessions, unterminated, "%s file %d: compatible %q has no NUL in its %d bytes", where, i, compat, luo.HandlerCompatLen)
		}
		if j, dup := tokens[uint64(f.Token)]; dup {
			d.find(whereSessions, kernel.NoAction, "%s file %d repeats token %#x of file %d; retrieving it finds the first", where, i, uint64(f.Token), j)
		} else {
			tokens[uint64(f.Token)] = i
		}
	}
}

// meta decodes kho-sim's metadata and checks the handover against it.
func (d *decoder) meta(t *fdt.Tree) {
	if t == nil {
		switch s := d.subtree(meta.Name); {
		case s == nil:
			d.note("no %s subtree: kho-sim metadata absent (a kernel's own handover), so nothing is checked against what was meant to be handed over", meta.Name)
		case s.Kind == KindBlob:
			d.find(whereMeta, kernel.NoAction, "the %s child is a raw blob, not the FDT kho-sim writes", meta.Name)
		}
		return
	}
	m, err := meta.Decode(t)
	if err != nil {
		d.find(whereMeta, kernel.NoAction, "%v", err)
		return
	}
	out := &Meta{
		Scenario: m.Scenario, Boot: m.Boot, Boots: m.Boots, LUONumber: m.LUONumber, Fix: m.Fix,
		Passed: m.Passed, Failed: m.Failed, Skipped: m.Skipped, TSCHz: m.TSCHz,
		FLBs: []MetaFLB{}, Files: []MetaFile{},
	}
	d.rep.KHOSim = out
	for _, f := range m.FLBs {
		want := payload.Info{Name: payloadName(f.Name), Size: f.Size, Seed: f.Seed, CRC: f.CRC}
		err := d.payload(f.Data, want)
		if err != nil {
			d.find(wherePayloads, kernel.NoAction, "FLB %q payload at %#x: %v", f.Name, f.Data, err)
		}
		out.FLBs = append(out.FLBs, MetaFLB{Name: f.Name, Data: Hex(f.Data), Count: f.Count, Size: f.Size, Seed: Hex(f.Seed), CRC: Hex(f.CRC), PayloadOK: err == nil})
	}
	for _, f := range m.Files {
		id := fmt.Sprintf("%s/%d", f.Session, f.Token)
		want := payload.Info{Name: payloadName(id), Size: f.Size, Seed: f.Seed, CRC: f.CRC}
		err := d.payload(f.Data, want)
		if err != nil {
			d.find(wherePayloads, kernel.NoAction, "file %s payload at %#x: %v", id, f.Data, err)
		}
		out.Files = append(out.Files, MetaFile{Session: f.Session, Token: Hex(f.Token), Handler: f.Handler, Data: Hex(f.Data), Size: f.Size, Seed: Hex(f.Seed), CRC: Hex(f.CRC), PayloadOK: err == nil})
	}
	d.checkAgainstMeta(m)
}

// checkAgainstMeta compares the kernel structures with what kho-sim says
// it handed over, in pkg/sim's wording.
func (d *decoder) checkAgainstMeta(m *meta.Meta) {
	l := d.rep.LUO
	if l == nil {
		d.find(whereMeta, kernel.LosesFLBState, "the metadata lists %d FLBs and %d files, but there is no readable %s subtree", len(m.FLBs), len(m.Files), luo.FDTKHOEntryName)
		return
	}
	if !d.luoFollowed {
		return // the LUO state itself is refused: its fields mean nothing
	}
	if l.LiveupdateNumber != m.LUONumber {
		d.find(d.luoWhere, kernel.NoAction, "liveupdate-number %d, want %d (one more per hop, 1 after a cold boot)", l.LiveupdateNumber, m.LUONumber)
	}
	if k := d.rep.KexecMetadata; k != nil && uint64(k.KexecCount) != m.LUONumber {
		d.find(whereKexec, kernel.NoAction, "kexec_count %d, want %d (kexec boots since the last cold boot)", k.KexecCount, m.LUONumber)
	}
	if l.Ser != nil && l.FLBsPA == 0 && len(m.FLBs) > 0 {
		d.find(whereFLB, kernel.LosesFLBState, "luo_ser flbs_pa is 0, but %d FLBs were handed over", len(m.FLBs))
	}
	if l.FLB != nil {
		d.checkFLBData(l.FLB.Entries)
		d.compareFLBs(l.FLB.Entries, m.FLBs)
	}
	switch {
	case l.Sessions != nil:
		d.compareFiles(l.Sessions.Sessions, m.Files)
	case l.Ser != nil && l.SessionsPA == 0:
		d.compareFiles(nil, m.Files) // luo_ser says: no sessions
	}
}

// checkFLBData checks that each FLB's data, which kho-sim's FLBs set to
// their payload's address, is preserved memory: a kernel FLB would
// phys_to_virt it unchecked. Only kho-sim's own FLBs are known to hold an
// address there.
func (d *decoder) checkFLBData(table []FLBEntry) {
	for _, e := range table {
		switch _, err := d.in.Map(uint64(e.Data), 1); {
		case errors.Is(err, physmem.ErrOutOfRegion):
			d.find(whereFLB, kernel.UsesBadAddress, "FLB entry %d (%q): data %#x lies outside the region %#x-%#x", e.Index, e.Name, uint64(e.Data), d.r.Base(), d.r.End()-1)
		case errors.Is(err, kho.ErrNotPreserved):
			d.find(whereFLB, kernel.UsesBadAddress, "FLB entry %d (%q): data %#x is not in the preserved-memory map", e.Index, e.Name, uint64(e.Data))
		}
	}
}

func (d *decoder) compareFLBs(table []FLBEntry, want []meta.FLB) {
	got := map[string]FLBEntry{}
	for _, e := range table {
		if _, dup := got[e.Name]; !dup && e.NameTerminated {
			got[e.Name] = e
		}
	}
	for _, w := range want {
		g, ok := got[w.Name]
		switch {
		case !ok:
			d.find(whereFLB, kernel.LosesFLBState, "FLB %q missing from the table", w.Name)
		case uint64(g.Data) != w.Data || g.Count != w.Count:
			d.find(whereFLB, kernel.NoAction, "FLB %q: table has data %#x count %d, expected data %#x count %d", w.Name, uint64(g.Data), g.Count, w.Data, w.Count)
		}
		delete(got, w.Name)
	}
	for _, e := range table {
		if _, left := got[e.Name]; left {
			d.find(whereFLB, kernel.NoAction, "FLB %q in the table but never preserved", e.Name)
			delete(got, e.Name)
		}
	}
}

func (d *decoder) compareFiles(sessions []Session, want []meta.File) {
	type key struct {
		session string
		token   uint64
	}
	got := map[key]File{}
	var order []key
	for _, s := range sessions {
		for _, f := range s.Files {
			k := key{s.Name, uint64(f.Token)}
			if _, dup := got[k]; !dup {
				got[k] = f
				order = append(order, k)
			}
		}
	}
	for _, w := range want {
		k := key{w.Session, w.Token}
		g, ok := got[k]
		switch {
		case !ok:
			d.find(whereSessions, kernel.NoAction, "file %s/%d missing from the session blocks; its state is lost", w.Session, w.Token)
		case g.Compatible != w.Handler || uint64(g.Data) != w.Data:
			d.find(whereSessions, kernel.NoAction, "file %s/%d: session block has handler %q data %#x, expected handler %q data %#x",
				w.Session, w.Token, g.Compatible, uint64(g.Data), w.Handler, w.Data)
		}
		delete(got, k)
	}
	for _, k := range order {
		if _, left := got[k]; left {
			d.find(whereSessions, kernel.NoAction, "file %q/%d in the session blocks but never preserved", k.session, k.token)
		}
	}
}

// payload verifies a kho-sim payload as the next boot would; the size
// comes from the metadata, and only preserved pages are read.
func (d *decoder) payload(pa uint64, want payload.Info) error {
	hdr, err := d.in.Map(pa, payload.HeaderSize)
	if err != nil {
		return err
	}
	got, err := payload.ReadHeader(hdr)
	if err != nil {
		return err
	}
	body, err := d.in.Map(pa+payload.HeaderSize, max(want.Size, 1))
	if err != nil {
		return err
	}
	return payload.Verify(got, body[:want.Size], want)
}

// payloadName is how kho-sim names a payload in its 32-byte header.
func payloadName(s string) string {
	if len(s) > 31 {
		return s[:31]
	}
	return s
}

// cfield returns a fixed-size C string field up to its first NUL, and
// whether it has one.
func cfield(b []byte) (string, bool) {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return string(b[:i]), true
	}
	return string(b), false
}

// cstring shows an FDT string property as text: up to the first NUL.
func cstring(v []byte) string {
	s, _ := cfield(v)
	return s
}

// parseReason drops fdt's generic prefix from a header or parse error.
func parseReason(err error) string {
	var pe *fdt.ParseError
	if errors.As(err, &pe) {
		if pe.Offset == 0 {
			return pe.Reason
		}
		return fmt.Sprintf("%s (offset %#x)", pe.Reason, pe.Offset)
	}
	return err.Error()
}

func dts(t *fdt.Tree) string {
	var b strings.Builder
	if err := fdt.Format(&b, t); err != nil {
		return ""
	}
	return b.String()
}

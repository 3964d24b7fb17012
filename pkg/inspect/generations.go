package inspect

import (
	"fmt"

	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/luo"
	"github.com/kho-sim/kho-sim/pkg/memfd"
)

// luoState decodes the "LUO" child with pkg/luo and takes over its
// findings and notes.
func (d *decoder) luoState() {
	h := luo.Decode(d.in, luo.DecodeOptions{})
	d.luo = h
	d.rep.Findings = append(d.rep.Findings, h.Findings...)
	d.rep.Notes = append(d.rep.Notes, h.Notes...)
	if !h.Readable {
		return
	}
	l := &LUO{Compatible: h.Compatible, LiveupdateNumber: h.LiveupdateNumber, SessionsPA: Hex(h.SessionsPA), FLBsPA: Hex(h.FLBsPA)}
	if h.Ser != nil {
		l.Ser = &Ser{PA: Hex(h.Ser.PA), Size: h.Ser.Size}
	}
	if t := h.FLB; t != nil {
		l.FLB = &FLBTable{PA: Hex(t.PA), PageCount: t.PageCount, Count: t.Count, Entries: []FLBEntry{}}
		for _, e := range t.Entries {
			l.FLB.Entries = append(l.FLB.Entries, FLBEntry{Index: e.Index, Name: e.Name, NameTerminated: e.NameTerminated, Data: Hex(e.Data), Count: e.Count})
		}
	}
	if t := h.Sessions; t != nil {
		l.Sessions = &SessionTable{PA: Hex(t.PA), Count: t.Count, Blocks: blocks(t.Blocks), Sessions: []Session{}}
		for _, s := range t.Sessions {
			out := Session{Index: s.Index, Name: s.Name, NameTerminated: s.NameTerminated, FilesPA: Hex(s.FilesPA), Count: s.Count, FileBlocks: blocks(s.FileBlocks), Files: []File{}}
			for _, f := range s.Files {
				file := File{Index: f.Index, Compatible: f.Compatible, CompatibleTerminated: f.CompatibleTerminated, Data: Hex(f.Data), Token: Hex(f.Token)}
				if f.Compatible == memfd.Compatible {
					file.Memfd = d.memfdState(s.Name, f)
				}
				out.Files = append(out.Files, file)
			}
			l.Sessions.Sessions = append(l.Sessions.Sessions, out)
		}
	}
	d.rep.LUO = l
}

// memfdState reads a memfd-v2 file's state strictly, every block of it checked
// against the memory map as kho_restore_folio would.
func (d *decoder) memfdState(session string, f luo.FileEntry) *Memfd {
	m, err := memfd.Read(d.in, f.Data, memfd.Options{Preserved: d.in.BlockAt})
	if err != nil {
		d.find(whereSessions, kernel.FailsMemfd, "session %q token %#x: %v", session, f.Token, err)
		return nil
	}
	return &Memfd{Size: m.Size(), Pos: m.Ser.Pos, Seals: m.Seals(), Folios: len(m.Folios), Holes: m.Holes, CRC: Hex(m.Checksum)}
}

func blocks(in []luo.Block) []Block {
	out := []Block{}
	for _, b := range in {
		out = append(out, Block{PA: Hex(b.PA), Count: b.Count})
	}
	return out
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
	d.kexec = &m
	d.rep.KexecMetadata = &KexecMetadata{PA: s.PA, Size: s.BlobSize, Version: m.Version, PreviousRelease: m.PreviousRelease, KexecCount: m.KexecCount}
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

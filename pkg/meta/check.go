package meta

import (
	"errors"

	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/luo"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// Where Check reports what differs from the metadata
// (kernel.Finding.Where), besides pkg/luo's places.
const (
	WhereMeta  = "kho-sim metadata"
	WhereKexec = "kexec-metadata"
)

// Check compares the LUO state as luo.Decode read it, and 7.2's
// kexec-metadata (nil when none was read), with what m says was handed
// over, worded for h's generation. The next boot and inspect both use it.
func (m *Meta) Check(h *luo.Handover, kexec *kho.KexecMetadata) []kernel.Finding {
	g := h.Generation
	var out []kernel.Finding
	find := func(where string, a kernel.Action, format string, args ...any) {
		out = append(out, g.Find(where, a, format, args...))
	}
	if !h.Readable {
		find(WhereMeta, kernel.LosesFLBState, "the metadata lists %d FLBs and %d files, but there is no readable %s subtree", len(m.FLBs), len(m.Files), luo.FDTKHOEntryName)
		return out
	}
	if !h.Followed {
		return out // the LUO state itself is refused: its fields mean nothing
	}
	if h.LiveupdateNumber != m.LUONumber {
		find(h.Where, kernel.NoAction, "liveupdate-number %d, want %d (one more per hop, 1 after a cold boot)", h.LiveupdateNumber, m.LUONumber)
	}
	if kexec != nil && uint64(kexec.KexecCount) != m.LUONumber {
		find(WhereKexec, kernel.NoAction, "kexec_count %d, want %d (kexec boots since the last cold boot)", kexec.KexecCount, m.LUONumber)
	}
	if h.Ser != nil && h.FLBsPA == 0 && len(m.FLBs) > 0 {
		find(luo.WhereFLB, kernel.LosesFLBState, "luo_ser flbs_pa is 0, but %d FLBs were handed over", len(m.FLBs))
	}
	if h.FLB != nil {
		if h.In != nil { // the data's memory is known only through KHO
			out = append(out, m.checkFLBData(h)...)
		}
		out = append(out, CompareFLBs(g, h.FLB.Entries, m.FLBs)...)
	}
	switch {
	case h.Sessions != nil:
		out = append(out, m.compareFiles(g, h.Sessions.Sessions)...)
	case h.Ser != nil && h.SessionsPA == 0:
		out = append(out, m.compareFiles(g, nil)...) // luo_ser says: no sessions
	}
	return out
}

// checkFLBData checks that each FLB's data, which kho-sim's FLBs set to
// their payload's address, is preserved memory: a kernel FLB would
// phys_to_virt it unchecked. Only kho-sim's own FLBs are known to hold an
// address there: an FLB the metadata marks as holding a handle is skipped.
func (m *Meta) checkFLBData(h *luo.Handover) []kernel.Finding {
	handle := map[string]bool{}
	for _, f := range m.FLBs {
		handle[f.Name] = f.Handle
	}
	var out []kernel.Finding
	for _, e := range h.FLB.Entries {
		if handle[e.Name] {
			continue
		}
		switch _, err := h.In.Map(e.Data, 1); {
		case errors.Is(err, physmem.ErrOutOfRegion):
			rg := h.In.Memory().Range()
			out = append(out, h.Generation.Find(luo.WhereFLB, kernel.UsesBadAddress, "FLB entry %d (%q): data %#x lies outside the region %#x-%#x", e.Index, e.Name, e.Data, rg.Start, rg.End()-1))
		case errors.Is(err, kho.ErrNotPreserved):
			out = append(out, h.Generation.Find(luo.WhereFLB, kernel.UsesUnpreserved, "FLB entry %d (%q): data %#x is not in the preserved-memory map", e.Index, e.Name, e.Data))
		}
	}
	return out
}

// CompareFLBs compares an FLB table with the FLBs expected in it.
func CompareFLBs(g kernel.Generation, table []luo.FLBEntry, want []FLB) []kernel.Finding {
	var out []kernel.Finding
	got := map[string]luo.FLBEntry{}
	for _, e := range table {
		if _, dup := got[e.Name]; !dup && e.NameTerminated {
			got[e.Name] = e
		}
	}
	for _, w := range want {
		e, ok := got[w.Name]
		switch {
		case !ok:
			out = append(out, g.Find(luo.WhereFLB, kernel.LosesFLBState, "FLB %q missing from the table", w.Name))
		case e.Data != w.Data || e.Count != w.Count:
			out = append(out, g.Find(luo.WhereFLB, kernel.NoAction, "FLB %q: table has data %#x count %d, expected data %#x count %d", w.Name, e.Data, e.Count, w.Data, w.Count))
		}
		delete(got, w.Name)
	}
	for _, e := range table {
		if _, left := got[e.Name]; left {
			out = append(out, g.Find(luo.WhereFLB, kernel.NoAction, "FLB %q in the table but never preserved", e.Name))
			delete(got, e.Name)
		}
	}
	return out
}

func (m *Meta) compareFiles(g kernel.Generation, sessions []luo.SessionEntry) []kernel.Finding {
	var out []kernel.Finding
	type key struct {
		session string
		token   uint64
	}
	got := map[key]luo.FileEntry{}
	var order []key
	for _, s := range sessions {
		for _, f := range s.Files {
			k := key{s.Name, f.Token}
			if _, dup := got[k]; !dup {
				got[k] = f
				order = append(order, k)
			}
		}
	}
	for _, w := range m.Files {
		k := key{w.Session, w.Token}
		f, ok := got[k]
		switch {
		case !ok:
			out = append(out, g.Find(luo.WhereSessions, kernel.NoAction, "file %s/%d missing from the session blocks; its state is lost", w.Session, w.Token))
		case f.Compatible != w.Handler || f.Data != w.Data:
			out = append(out, g.Find(luo.WhereSessions, kernel.NoAction, "file %s/%d: session block has handler %q data %#x, expected handler %q data %#x",
				w.Session, w.Token, f.Compatible, f.Data, w.Handler, w.Data))
		}
		delete(got, k)
	}
	for _, k := range order {
		if _, left := got[k]; left {
			out = append(out, g.Find(luo.WhereSessions, kernel.NoAction, "file %q/%d in the session blocks but never preserved", k.session, k.token))
		}
	}
	return out
}

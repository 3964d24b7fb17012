package inspect

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteJSON writes r as the JSON document described in the package
// comment, indented, with a final newline.
func WriteJSON(w io.Writer, r *Report) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // keep the dts's <cells> readable
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("inspect: encode JSON: %w", err)
	}
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("inspect: write JSON: %w", err)
	}
	return nil
}

// WriteText writes r for a person: each FDT as dtc prints it, the LUO
// blocks, kho-sim's metadata and the preserved memory as tables, then the
// notes and findings. Strings read from memory are printed quoted (Go
// syntax), so no byte of the image reaches the terminal raw.
func WriteText(w io.Writer, r *Report) error {
	var b bytes.Buffer
	if r.Region.Size == 0 {
		fmt.Fprintf(&b, "KHO handover at %#x, no region\n", uint64(r.RootPA))
	} else {
		fmt.Fprintf(&b, "KHO handover at %#x in region %#x-%#x (%s)\n", uint64(r.RootPA), uint64(r.Region.Start), uint64(r.Region.Start)+r.Region.Size-1, size(r.Region.Size))
	}
	if k := r.KHO; k != nil {
		fmt.Fprintf(&b, "\n== KHO root FDT at %#x (%d bytes) ==\n%s", uint64(k.PA), k.Size, k.DTS)
	}
	for _, s := range r.Subtrees {
		switch {
		case s.DTS != "":
			fmt.Fprintf(&b, "\n== subtree %q: FDT at %#x (%d bytes) ==\n%s", s.Name, uint64(s.FDTPA), s.Size, s.DTS)
		default:
			fmt.Fprintf(&b, "\n== subtree %q: FDT at %#x not read ==\n", s.Name, uint64(s.FDTPA))
		}
	}
	if l := r.LUO; l != nil {
		textLUO(&b, l)
	}
	if m := r.KHOSim; m != nil {
		textMeta(&b, m)
	}
	if m := r.Memory; m != nil {
		fmt.Fprintf(&b, "\n== preserved memory: %d blocks, %d pages (%s) in %d ranges ==\n", m.Blocks, m.Bytes/4096, size(m.Bytes), len(m.Ranges))
		tw := table(&b)
		for _, rg := range m.Ranges {
			fmt.Fprintf(tw, "%#x-%#x\t%s\t%d pages\n", uint64(rg.Start), uint64(rg.End)-1, size(rg.Size), rg.Pages)
		}
		tw.Flush()
	}
	if len(r.Notes) > 0 {
		b.WriteString("\n== notes ==\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", printable(n))
		}
	}
	fmt.Fprintf(&b, "\n== findings: %d ==\n", len(r.Findings))
	for _, f := range r.Findings {
		fmt.Fprintf(&b, "- %s\n", printable(f.String()))
	}
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("inspect: write text: %w", err)
	}
	return nil
}

func textLUO(b *bytes.Buffer, l *LUO) {
	fmt.Fprintf(b, "\n== LUO ==\n")
	tw := table(b)
	fmt.Fprintf(tw, "compatible\t%q\n", l.Compatible)
	fmt.Fprintf(tw, "liveupdate-number\t%d\n", l.LiveupdateNumber)
	fmt.Fprintf(tw, "luo-session-header\t%#x\n", uint64(l.SessionHeaderPA))
	fmt.Fprintf(tw, "luo-flb-header\t%#x\n", uint64(l.FLBHeaderPA))
	tw.Flush()
	if t := l.FLB; t != nil {
		fmt.Fprintf(b, "\n== FLB table at %#x: pgcnt %d, count %d ==\n", uint64(t.PA), t.PageCount, t.Count)
		tw := table(b)
		fmt.Fprintf(tw, "INDEX\tNAME\tDATA\tCOUNT\n")
		for _, e := range t.Entries {
			fmt.Fprintf(tw, "%d\t%q%s\t%#x\t%d\n", e.Index, e.Name, unterminated(e.NameTerminated), uint64(e.Data), e.Count)
		}
		tw.Flush()
	}
	if t := l.Sessions; t != nil {
		fmt.Fprintf(b, "\n== sessions at %#x: count %d ==\n", uint64(t.PA), t.Count)
		for _, s := range t.Sessions {
			fmt.Fprintf(b, "session %d %q%s: files %#x, count %d\n", s.Index, s.Name, unterminated(s.NameTerminated), uint64(s.FilesPA), s.Count)
			if len(s.Files) == 0 {
				continue
			}
			tw := table(b)
			fmt.Fprintf(tw, "    FILE\tCOMPATIBLE\tDATA\tTOKEN\n")
			for _, f := range s.Files {
				fmt.Fprintf(tw, "    %d\t%q%s\t%#x\t%#x\n", f.Index, f.Compatible, unterminated(f.CompatibleTerminated), uint64(f.Data), uint64(f.Token))
			}
			tw.Flush()
		}
	}
}

func textMeta(b *bytes.Buffer, m *Meta) {
	fix := "off"
	if m.Fix {
		fix = "on"
	}
	fmt.Fprintf(b, "\n== kho-sim metadata ==\nscenario %q, written by boot %d of %d, liveupdate-number %d expected, finish-before-retrieve fix %s; results so far: pass %d fail %d skip %d\n",
		m.Scenario, m.Boot, m.Boots, m.LUONumber, fix, m.Passed, m.Failed, m.Skipped)
	if len(m.FLBs) > 0 {
		tw := table(b)
		fmt.Fprintf(tw, "FLB\tDATA\tCOUNT\tPAYLOAD\tSEED\tCRC32C\tCHECK\n")
		for _, f := range m.FLBs {
			fmt.Fprintf(tw, "%q\t%#x\t%d\t%s\t%#x\t%#08x\t%s\n", f.Name, uint64(f.Data), f.Count, size(f.Size), uint64(f.Seed), uint64(f.CRC), verdict(f.PayloadOK))
		}
		tw.Flush()
	}
	if len(m.Files) > 0 {
		tw := table(b)
		fmt.Fprintf(tw, "FILE\tHANDLER\tDATA\tPAYLOAD\tSEED\tCRC32C\tCHECK\n")
		for _, f := range m.Files {
			fmt.Fprintf(tw, "%q/%d\t%q\t%#x\t%s\t%#x\t%#08x\t%s\n", f.Session, uint64(f.Token), f.Handler, uint64(f.Data), size(f.Size), uint64(f.Seed), uint64(f.CRC), verdict(f.PayloadOK))
		}
		tw.Flush()
	}
}

// printable escapes what is not printable ASCII as \xNN: findings quote
// the strings they take from memory, and this keeps it so whatever a
// message carries.
func printable(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e {
			fmt.Fprintf(&b, "\\x%02x", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 8, 2, ' ', 0) }

func unterminated(terminated bool) string {
	if terminated {
		return ""
	}
	return " (no NUL)"
}

func verdict(ok bool) string {
	if ok {
		return "payload ok"
	}
	return "payload BAD"
}

// size prints a byte count in the largest binary unit that divides it.
func size(n uint64) string {
	switch {
	case n != 0 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n != 0 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n != 0 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

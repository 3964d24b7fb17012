package inspect

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/bits"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/kho-sim/kho-sim/pkg/physmem"
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
	if g := r.Generation; g != nil {
		name := g.Name
		if name == "" {
			name = "unknown"
		}
		fmt.Fprintf(&b, "generation %s (KHO %q, LUO %q)\n", name, g.KHO, g.LUO)
	}
	if k := r.KHO; k != nil {
		fmt.Fprintf(&b, "\n== KHO root FDT at %#x (%d bytes) ==\n%s", uint64(k.PA), k.Size, annotateU64(k.DTS))
	}
	for _, s := range r.Subtrees {
		textSubtree(&b, s)
	}
	if l := r.LUO; l != nil {
		textLUO(&b, l)
	}
	if k := r.KexecMetadata; k != nil {
		fmt.Fprintf(&b, "\n== kexec-metadata at %#x (%d bytes) ==\nversion %d, previous_release %q, kexec_count %d\n",
			uint64(k.PA), k.Size, k.Version, k.PreviousRelease, k.KexecCount)
	}
	if m := r.KHOSim; m != nil {
		textMeta(&b, m)
	}
	if m := r.Memory; m != nil {
		enc := "bitmap chunks"
		if m.Encoding == EncodingRadix {
			enc = "radix tree"
		}
		fmt.Fprintf(&b, "\n== preserved memory (%s): %d blocks, %d pages (%s) in %d ranges ==\n", enc, m.Blocks, m.Bytes/physmem.PageSize, size(m.Bytes), len(m.Ranges))
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

func textSubtree(b *bytes.Buffer, s Subtree) {
	where := fmt.Sprintf("at %#x", uint64(s.PA))
	if s.BlobSize != 0 {
		where = fmt.Sprintf("at %#x, blob-size %d", uint64(s.PA), s.BlobSize)
	}
	switch s.Kind {
	case KindFDT:
		fmt.Fprintf(b, "\n== subtree %q: FDT %s (%d bytes) ==\n%s", s.Name, where, s.Size, annotateU64(s.DTS))
	case KindBlob:
		fmt.Fprintf(b, "\n== subtree %q: blob %s ==\n", s.Name, where)
		hexDump(b, s.Hex)
		if shown := len(s.Hex) / 2; shown < s.Size {
			fmt.Fprintf(b, "... %d more bytes\n", s.Size-shown)
		}
	default:
		fmt.Fprintf(b, "\n== subtree %q: %s not read ==\n", s.Name, where)
	}
}

// annotateU64 follows every 8-byte property dtc prints as two cells with
// its value as the native-endian u64 it is: KHO, LUO and kho-sim store each
// u64 as the CPU's bytes (fdt_setprop(fdt, name, &v, sizeof(v)) on x86-64,
// little-endian), which dtc shows as two byte-swapped big-endian cells, so
// 0x159000 reads <0x901500 0x00>. The value goes in a C comment, which dtc
// ignores: the text still compiles to the same blob.
func annotateU64(dts string) string {
	lines := strings.SplitAfter(dts, "\n")
	for i, l := range lines {
		body, ok := strings.CutSuffix(l, ">;\n")
		if !ok {
			continue
		}
		_, cells, ok := strings.Cut(body, " = <")
		if !ok {
			continue
		}
		hi, lo, ok := strings.Cut(cells, " ")
		c0, err0 := strconv.ParseUint(strings.TrimPrefix(hi, "0x"), 16, 32)
		c1, err1 := strconv.ParseUint(strings.TrimPrefix(lo, "0x"), 16, 32)
		if !ok || err0 != nil || err1 != nil || !strings.HasPrefix(hi, "0x") || !strings.HasPrefix(lo, "0x") {
			continue
		}
		v := uint64(bits.ReverseBytes32(uint32(c0))) | uint64(bits.ReverseBytes32(uint32(c1)))<<32
		lines[i] = fmt.Sprintf("%s>; /* %#x */\n", body, v)
	}
	return strings.Join(lines, "")
}

// hexDump prints hex-encoded bytes 16 to a line with offsets and their
// printable ASCII.
func hexDump(b *bytes.Buffer, h string) {
	data, err := hex.DecodeString(h)
	if err != nil {
		return // Decode writes valid hex; a hand-made Report may not
	}
	for off := 0; off < len(data); off += 16 {
		line := data[off:min(off+16, len(data))]
		fmt.Fprintf(b, "%04x: %-47s  |", off, fmt.Sprintf("% x", line))
		for _, c := range line {
			if c < 0x20 || c > 0x7e {
				c = '.'
			}
			b.WriteByte(c)
		}
		b.WriteString("|\n")
	}
}

func textLUO(b *bytes.Buffer, l *LUO) {
	fmt.Fprintf(b, "\n== LUO: %s ==\n", l.describe())
	tw := table(b)
	fmt.Fprintf(tw, "compatible\t%q\n", l.Compatible)
	fmt.Fprintf(tw, "liveupdate-number\t%d\n", l.LiveupdateNumber)
	if l.Ser == nil {
		fmt.Fprintf(tw, "luo-session-header\t%#x\n", uint64(l.SessionsPA))
		fmt.Fprintf(tw, "luo-flb-header\t%#x\n", uint64(l.FLBsPA))
	} else {
		fmt.Fprintf(tw, "sessions_pa\t%#x\n", uint64(l.SessionsPA))
		fmt.Fprintf(tw, "flbs_pa\t%#x\n", uint64(l.FLBsPA))
	}
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
		fmt.Fprintf(b, "\n== sessions at %#x: count %d%s ==\n", uint64(t.PA), t.Count, blockList(t.Blocks))
		for _, s := range t.Sessions {
			fmt.Fprintf(b, "session %d %q%s: files %#x, count %d%s\n", s.Index, s.Name, unterminated(s.NameTerminated), uint64(s.FilesPA), s.Count, blockList(s.FileBlocks))
			if len(s.Files) == 0 {
				continue
			}
			tw := table(b)
			fmt.Fprintf(tw, "    FILE\tCOMPATIBLE\tDATA\tTOKEN\tCONTENT\n")
			for _, f := range s.Files {
				fmt.Fprintf(tw, "    %d\t%q%s\t%#x\t%#x\t%s\n", f.Index, f.Compatible, unterminated(f.CompatibleTerminated), uint64(f.Data), uint64(f.Token), f.Memfd.describe())
			}
			tw.Flush()
		}
	}
}

// blockList shows a 7.2 chain of more than one block; one block says nothing
// the line does not already say.
func blockList(blocks []Block) string {
	if len(blocks) < 2 {
		return ""
	}
	parts := make([]string, len(blocks))
	for i, bl := range blocks {
		parts[i] = fmt.Sprintf("%#x: %d", uint64(bl.PA), bl.Count)
	}
	return fmt.Sprintf(" in %d blocks (%s)", len(blocks), strings.Join(parts, ", "))
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
		fmt.Fprintf(tw, "FLB\tDATA\tCOUNT\tPAYLOAD\tSEED\tCRC32\tCHECK\n")
		for _, f := range m.FLBs {
			fmt.Fprintf(tw, "%q\t%#x\t%d\t%s\t%#x\t%#08x\t%s\n", f.Name, uint64(f.Data), f.Count, size(f.Size), uint64(f.Seed), uint64(f.CRC), verdict(f.PayloadOK))
		}
		tw.Flush()
	}
	if len(m.Files) > 0 {
		tw := table(b)
		fmt.Fprintf(tw, "FILE\tHANDLER\tDATA\tPAYLOAD\tSEED\tCRC32\tCHECK\n")
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

// describe is a memfd-v2 file's size, folio count and checksum; "" for
// another handler's file.
func (m *Memfd) describe() string {
	if m == nil {
		return ""
	}
	s := fmt.Sprintf("size %d, %d folios, crc32 %#08x", m.Size, m.Folios, uint64(m.CRC))
	if m.Holes > 0 {
		s += fmt.Sprintf(", %d holes", m.Holes)
	}
	if m.Seals != 0 {
		s += fmt.Sprintf(", seals %#x", m.Seals)
	}
	return s
}

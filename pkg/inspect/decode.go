package inspect

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/kho-sim/kho-sim/internal/payload"
	"github.com/kho-sim/kho-sim/pkg/fdt"
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/luo"
	"github.com/kho-sim/kho-sim/pkg/memfd"
	"github.com/kho-sim/kho-sim/pkg/meta"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// Where a finding was made (kernel.Finding.Where); the LUO state's are
// pkg/luo's.
const (
	whereRoot     = "kho root"
	whereMap      = "preserved-memory map"
	whereLUO      = luo.WhereLUO
	whereSer      = luo.WhereSer
	whereBlob     = luo.WhereBlob
	whereFLB      = luo.WhereFLB
	whereSessions = luo.WhereSessions
	whereKexec    = "kexec-metadata"
	whereMeta     = "kho-sim metadata"
	wherePayloads = "payloads"
)

var le = binary.LittleEndian

// decoder carries one Decode.
type decoder struct {
	r   kho.Memory
	in  *kho.Incoming
	rep *Report
	// abi is the generation whose kernel the findings speak of: the one
	// the compatibles name, else the KHO root's (kho-v4: 7.2, else 7.0).
	abi kernel.Generation
	// luo is the LUO state as pkg/luo decoded it, kexec 7.2's
	// kexec-metadata as pkg/kho read it (nil: none).
	luo   *luo.Handover
	kexec *kho.KexecMetadata
}

// Decode reads the handover whose KHO root FDT is at rootPA in r (a
// region, an image, a real kernel's dump), in
// whichever generation its compatibles name (kho-v1 with a luo-v1 or
// luo-v2 LUO FDT, kho-v4 with a luo-v5 blob). It never fails: whatever
// cannot be read or is wrong becomes a Finding, and decoding goes on
// wherever the rest does not depend on it. Memory is untrusted: every
// address, count and string is checked, and beyond the root FDT and the
// memory map only pages the preserved-memory map lists are read
// (kho.Incoming.Map). The LUO state is pkg/luo's Decode. When no root FDT
// exists at rootPA, Report.KHO is nil and RootError says why.
func Decode(r kho.Memory, rootPA uint64) *Report {
	d := &decoder{r: r, abi: kernel.V70, rep: &Report{
		Schema: SchemaVersion, RootPA: Hex(rootPA),
		Subtrees: []Subtree{}, Notes: []string{}, Findings: []kernel.Finding{},
	}}
	if r == nil {
		d.find(whereRoot, kernel.NoAction, "no FDT at %#x: no memory to read", rootPA)
		return d.rep
	}
	rg := r.Range()
	d.rep.Region = Span{Start: Hex(rg.Start), Size: rg.Size}
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
	d.luoState()
	if d.in.Compatible() == kho.CompatibleV4 {
		d.kexecMetadata()
	}
	d.meta(trees[meta.Name])
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
		d.find(whereRoot, kernel.DisablesRevival, "root FDT at %#x: totalsize %d runs past the region's end %#x", pa, size, d.r.Range().End())
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
		pa, size, _ := kho.ChildProps(c, v4) // what can be read is shown
		d.rep.Subtrees = append(d.rep.Subtrees, Subtree{Name: c.Name, PA: Hex(pa), BlobSize: size})
	}
}

// generation names the handover from its compatibles (luo.Detect), and
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
		if err != nil && name != luo.FDTKHOEntryName { // pkg/luo reports its own
			d.find("subtree "+name, kernel.NoAction, "%v", err)
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
	return d.fdtChild(s, trees)
}

// fdtChild reads the child's FDT into s and trees.
func (d *decoder) fdtChild(s *Subtree, trees map[string]*fdt.Tree) error {
	t, blob, err := d.in.SubtreeFDT(s.Name)
	if err != nil {
		return err
	}
	compat, _ := t.Root.Prop("compatible")
	s.Kind, s.Size, s.Compatible, s.DTS = KindFDT, len(blob), cstring(compat), dts(t)
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
		return d.fdtChild(s, trees)
	}
	s.Kind, s.Size, s.Hex = KindBlob, len(blob), hex.EncodeToString(blob[:min(len(blob), MaxBlobHex)])
	return nil
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
		var err error
		if !f.Handle { // a handle is the FLB's whole state: nothing to read
			err = d.payload(f.Data, want)
		}
		if err != nil {
			d.find(wherePayloads, kernel.NoAction, "FLB %q payload at %#x: %v", f.Name, f.Data, err)
		}
		out.FLBs = append(out.FLBs, MetaFLB{Name: f.Name, Data: Hex(f.Data), Count: f.Count, Size: f.Size, Seed: Hex(f.Seed), CRC: Hex(f.CRC), PayloadOK: err == nil})
	}
	for _, f := range m.Files {
		id := fmt.Sprintf("%s/%d", f.Session, f.Token)
		want := payload.Info{Name: payloadName(id), Size: f.Size, Seed: f.Seed, CRC: f.CRC}
		var err error
		if f.Memfd {
			err = d.memfd(f.Data, f.Size, f.CRC)
		} else {
			err = d.payload(f.Data, want)
		}
		if err != nil {
			d.find(wherePayloads, kernel.NoAction, "file %s payload at %#x: %v", id, f.Data, err)
		}
		out.Files = append(out.Files, MetaFile{Session: f.Session, Token: Hex(f.Token), Handler: f.Handler, Data: Hex(f.Data), Size: f.Size, Seed: Hex(f.Seed), CRC: Hex(f.CRC), PayloadOK: err == nil})
	}
	d.rep.Findings = append(d.rep.Findings, m.Check(d.luo, d.kexec)...)
}

// memfd reads memfd-v2 state strictly, every block a preserved block of
// its order, and compares its size and content checksum with the metadata.
func (d *decoder) memfd(pa, size uint64, crc uint32) error {
	f, err := memfd.Read(d.in, pa, memfd.Options{Preserved: d.in.BlockAt})
	if err != nil {
		return err
	}
	if f.Size() != size || f.Checksum != crc {
		return fmt.Errorf("memfd %s; kho-sim wrote size %d, checksum %#08x", f, size, crc)
	}
	return nil
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

package luo

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/kho-sim/kho-sim/pkg/fdt"
	"github.com/kho-sim/kho-sim/pkg/flb"
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// Where Decode reports a finding (kernel.Finding.Where).
const (
	WhereLUO      = "LUO FDT"
	WhereSer      = "luo_ser"
	WhereBlob     = "LUO blob"
	WhereFLB      = "FLB table"
	WhereSessions = "sessions"
	WhereSubtree  = "subtree " + FDTKHOEntryName
)

// MaxChainBlocks bounds the 7.2 chain blocks Decode reads over a whole
// handover, so that chains sharing blocks cannot multiply the work
// (KHO_MAX_BLOCKS, 10000, bounds only one chain).
const MaxChainBlocks = 1 << 14

// Handover is the LUO state a previous kernel handed over, as Decode read
// it: every field the kernel's structures hold, in any generation, and
// what is wrong with them. Fields are zero or nil where the state could
// not be read.
type Handover struct {
	// In is the KHO side the state was read through.
	In *kho.Incoming
	// KexecMetadata is 7.2's kexec-metadata, as Read reads it.
	KexecMetadata *kho.KexecMetadata
	// Detected is what the compatibles say the handover is.
	Detected Detected
	// Generation is the generation whose kernel the findings speak of:
	// the one asked for, else the one detected, else the KHO root's
	// (kho-v4: 7.2, else 7.0).
	Generation kernel.Generation
	// Present is false when the handover has no "LUO" child at all, and
	// Readable false when the child's FDT or blob could not be read.
	Present, Readable bool
	// Compatible is the LUO FDT's ("luo-v1", "luo-v2") or, in 7.2, the
	// luo_ser blob's compatible field ("luo-v5").
	Compatible       string
	LiveupdateNumber uint64
	// Ser is struct luo_ser (luo-v2: where luo-abi-header points; 7.2:
	// the child's blob); nil in luo-v1, which has none.
	Ser *Span
	// SessionsPA and FLBsPA are luo-v1's luo-session-header and
	// luo-flb-header, or luo_ser's sessions_pa and flbs_pa (0: none).
	SessionsPA, FLBsPA uint64
	// FLB and Sessions are nil when absent or unreadable.
	FLB      *FLBTable
	Sessions *SessionTable
	// Where is where findings about the state's own fields are made, and
	// Followed says those fields were good enough to follow to the blocks.
	Where    string
	Followed bool
	Notes    []string
	Findings []kernel.Finding
}

// Span is where a structure lies.
type Span struct {
	PA, Size uint64
}

// FLBTable is the FLB page: struct luo_flb_header_ser and its entries.
type FLBTable struct {
	PA        uint64
	PageCount uint64 // pgcnt
	Count     uint64 // as the header claims it
	// Entries are the first min(Count, LUO_FLB_MAX) entries.
	Entries []FLBEntry
}

// FLBEntry is one struct luo_flb_ser.
type FLBEntry struct {
	Index          int
	Name           string // up to the first NUL
	NameTerminated bool
	Data, Count    uint64
}

// Block is one block of session or file entries: the single session block
// (16 pages) or file block (2 pages) of luo-v1 and luo-v2, or one
// page-sized block of a 7.2 chain; Count is what it claims.
type Block struct {
	PA, Count uint64
}

// SessionTable is the session block (luo-v1, luo-v2) or chain (7.2).
type SessionTable struct {
	PA uint64 // the (first) block
	// Count is what the blocks claim, summed over a 7.2 chain.
	Count    uint64
	Blocks   []Block
	Sessions []SessionEntry
}

// SessionEntry is one struct luo_session_ser and its files.
type SessionEntry struct {
	Index          int
	Name           string
	NameTerminated bool
	FilesPA        uint64
	Count          uint64 // files, as the entry claims
	FileBlocks     []Block
	Files          []FileEntry
}

// FileEntry is one struct luo_file_ser.
type FileEntry struct {
	Index                int
	Compatible           string
	CompatibleTerminated bool
	Data, Token          uint64
}

// DecodeOptions select how Decode reads.
type DecodeOptions struct {
	// Generation is the generation the state is read as, as a kernel of
	// that generation would; "" reads the one the compatibles name.
	Generation kernel.Generation
}

// decoder carries one Decode.
type decoder struct {
	in         *kho.Incoming
	h          *Handover
	force      kernel.Generation
	blocksLeft int
	claims     map[uint64]string // 7.2: which structure holds each page
}

// Decode reads the LUO state of the handover in, in whichever generation
// its compatibles name (or opts.Generation): luo-v1's FDT with session and
// FLB nodes, luo-v2's FDT and struct luo_ser, 7.2's raw luo_ser with
// linked session and file blocks; and the FLB page. It never fails:
// whatever cannot be read or is wrong becomes a Finding, worded for the
// handover's kernel, and decoding goes on wherever the rest does not
// depend on it. Memory is untrusted: every address, count and string is
// checked, and only pages the preserved-memory map lists are read
// (kho.Incoming.Map).
//
// A 7.2 handover is also held to what neither the kernel nor the older
// generations check, as a real 7.2 kernel's handovers always satisfy it:
// each structure lies in one preserved block and no page serves two,
// blocks and pages are page aligned, the liveupdate number and every
// FLB's count are not 0, and the chains of the whole handover hold at most
// MaxChainBlocks blocks.
func Decode(in *kho.Incoming, opts DecodeOptions) *Handover {
	d := &decoder{in: in, force: opts.Generation, blocksLeft: MaxChainBlocks,
		h: &Handover{In: in, Detected: Detect(in), Notes: []string{}, Findings: []kernel.Finding{}}}
	h := d.h
	h.Generation = opts.Generation
	if h.Generation == "" {
		h.Generation = h.Detected.Generation
	}
	if h.Generation == "" {
		h.Generation = kernel.V70
		if in.Compatible() == kho.CompatibleV4 {
			h.Generation = kernel.V72
		}
	}
	if in.Compatible() == kho.CompatibleV4 {
		d.claims = map[uint64]string{}
		d.strictSpan("kho root", "KHO root FDT", in.RootPA(), in.RootSize(), physmem.PageSize)
		if c, _ := in.Root().Root.Prop("compatible"); string(c) != kho.CompatibleV4+"\x00" {
			d.find("kho root", kernel.NoAction, "root compatible %q: 7.2 writes exactly %q", c, kho.CompatibleV4)
		}
		d.luoBlob()
		if pa, size, err := in.SubtreeBlob(kho.KexecMetadataName); err == nil {
			d.strictSpan("kexec-metadata", kho.KexecMetadataName, pa, size, physmem.PageSize)
		}
	} else {
		d.luoFDT()
	}
	return h
}

// Err is the first finding, or nil: for readers that accept nothing wrong.
func (h *Handover) Err() error {
	if len(h.Findings) == 0 {
		return nil
	}
	return h.Findings[0]
}

func (d *decoder) find(where string, a kernel.Action, format string, args ...any) {
	d.h.Findings = append(d.h.Findings, d.h.Generation.Find(where, a, format, args...))
}

func (d *decoder) note(format string, args ...any) {
	d.h.Notes = append(d.h.Notes, fmt.Sprintf(format, args...))
}

// noLUO notes a handover without live update state.
func (d *decoder) noLUO() {
	d.note("no %s subtree: no live update state was handed over", FDTKHOEntryName)
}

// luoFDT decodes a kho-v1 handover's LUO FDT: luo-v1's session and FLB
// nodes, or luo-v2's luo-abi-header. A compatible that is neither is
// reported and decoded as luo-v1 (as luo-v2 when that is what is read).
func (d *decoder) luoFDT() {
	h := d.h
	h.Where = WhereLUO
	if !slices.Contains(d.in.SubtreeNames(), FDTKHOEntryName) {
		d.noLUO()
		return
	}
	h.Present = true
	t, _, err := d.in.SubtreeFDT(FDTKHOEntryName)
	if err != nil {
		d.find(WhereSubtree, kernel.PanicsAtBoot, "LUO FDT: %v", err)
		return
	}
	h.Readable = true
	r := t.Root
	compat, _ := r.Prop("compatible")
	h.Compatible = cstring(compat)
	v2 := r.IsCompatible(FDTCompatibleV2)
	switch {
	case v2 && d.force != "" && d.force != kernel.LUOv2:
		d.find(WhereLUO, kernel.PanicsAtBoot, "LUO FDT compatible %q, want %q", h.Compatible, compatibleOf(d.force))
		return
	case v2:
		d.luoV2(r)
		return
	case d.force == kernel.LUOv2:
		d.find(WhereLUO, kernel.PanicsAtBoot, "LUO FDT compatible %q, want %q", h.Compatible, FDTCompatibleV2)
		d.luoV2(r)
		return
	case r.IsCompatible(FDTCompatible):
	case d.force != "":
		d.find(WhereLUO, kernel.PanicsAtBoot, "LUO FDT compatible %q, want %q", h.Compatible, FDTCompatible)
	default:
		d.find(WhereLUO, kernel.PanicsAtBoot, "LUO FDT compatible %q, want %q or %q", h.Compatible, FDTCompatible, FDTCompatibleV2)
	}
	num, err := r.U64(FDTLiveupdateNum)
	if err != nil {
		d.find(WhereLUO, kernel.PanicsAtBoot, "LUO FDT: %v", err)
	}
	h.LiveupdateNumber = num
	h.Followed = true
	sessPA, sessOK := d.luoNode(r, FDTSessionNode, FDTSessionCompatible, FDTSessionHeader)
	flbPA, flbOK := d.luoNode(r, FDTFLBNode, FDTFLBCompatible, FDTFLBHeader)
	h.SessionsPA, h.FLBsPA = sessPA, flbPA
	if flbOK {
		d.flbAt(flbPA)
	}
	if sessOK {
		d.sessionBlockAt(sessPA)
	}
}

// luoNode checks a LUO subnode as luo_session_setup_incoming and
// luo_flb_setup_incoming do (a name with a unit address matches too) and
// returns its header address.
func (d *decoder) luoNode(r *fdt.Node, name, compat, prop string) (uint64, bool) {
	n := subnode(r, name)
	if n == nil {
		d.find(WhereLUO, kernel.PanicsAtBoot, "LUO FDT has no %s node", name)
		return 0, false
	}
	ok := true
	if !n.IsCompatible(compat) {
		c, _ := n.Prop("compatible")
		d.find(WhereLUO, kernel.PanicsAtBoot, "%s compatible %q, want %q", name, cstring(c), compat)
		ok = false
	}
	pa, err := n.U64(prop)
	if err != nil {
		d.find(WhereLUO, kernel.PanicsAtBoot, "%s: %v", name, err)
		return 0, false
	}
	return pa, ok
}

// luoV2 decodes the luo-v2 step's LUO FDT: luo-abi-header points at
// struct luo_ser, whose sessions_pa and flbs_pa lead to 7.0's session
// block and the FLB page (0: none).
func (d *decoder) luoV2(r *fdt.Node) {
	h := d.h
	serPA, err := r.U64(FDTABIHeader)
	if err != nil {
		d.find(WhereLUO, kernel.PanicsAtBoot, "LUO FDT: %v", err)
		return
	}
	h.Where = WhereSer
	h.Ser = &Span{PA: serPA, Size: SerV2Size}
	raw, err := d.in.Map(serPA, SerV2Size)
	if err != nil {
		d.find(WhereSer, kernel.UsesBadAddress, "luo_ser %#x: %v", serPA, err)
		return
	}
	ser, err := ParseSer(kernel.LUOv2, raw)
	if err != nil {
		d.find(WhereSer, kernel.UsesBadAddress, "luo_ser %#x: %v", serPA, err)
		return
	}
	d.followSer(ser)
	if ser.SessionsPA != 0 {
		d.sessionBlockAt(ser.SessionsPA)
	}
}

func (d *decoder) followSer(ser Ser) {
	h := d.h
	h.LiveupdateNumber, h.SessionsPA, h.FLBsPA = ser.LiveupdateNum, ser.SessionsPA, ser.FLBsPA
	h.Followed = true
	if ser.FLBsPA != 0 {
		d.flbAt(ser.FLBsPA)
	}
}

// luoBlob decodes 7.2's "LUO" child, the raw struct luo_ser, as
// luo_early_startup checks it (blob-size, an 8-byte strncmp of the
// compatible), and follows it to the session chain and the FLB page.
func (d *decoder) luoBlob() {
	h := d.h
	h.Where = WhereBlob
	pa, size, err := d.in.SubtreeBlob(FDTKHOEntryName)
	if !slices.Contains(d.in.SubtreeNames(), FDTKHOEntryName) {
		d.noLUO()
		return
	}
	h.Present = true
	var blob []byte
	if err == nil {
		blob, err = d.in.SubtreeBytes(FDTKHOEntryName)
	}
	if err != nil {
		act := kernel.PanicsAtBoot
		if size >= SerSize {
			if _, err := d.in.Map(pa, SerSize); err == nil {
				act = kernel.TakesOversizedBlob
			}
		}
		d.find(WhereSubtree, act, "LUO blob: %v", err)
		return
	}
	h.Readable = true
	h.Ser = &Span{PA: pa, Size: size}
	if len(blob) < SerSize {
		d.find(WhereBlob, kernel.PanicsAtBoot, "LUO blob of %d bytes, smaller than struct luo_ser (%d)", len(blob), SerSize)
		return
	}
	d.strictSpan(WhereBlob, "LUO blob", pa, size, physmem.PageSize)
	ser, _ := ParseSer(kernel.V72, blob) // long enough: checked above
	h.Compatible = ser.Compatible
	if ser.Compatible != SerCompatible {
		h.LiveupdateNumber, h.SessionsPA, h.FLBsPA = ser.LiveupdateNum, ser.SessionsPA, ser.FLBsPA
		d.find(WhereBlob, kernel.PanicsAtBoot, "LUO blob compatible %q, want %q (luo_early_startup: EINVAL)", ser.Compatible, SerCompatible)
		return
	}
	if ser.LiveupdateNum == 0 {
		d.find(WhereBlob, kernel.NoAction, "liveupdate number 0: a cold boot hands over 1")
	}
	d.followSer(ser)
	if ser.SessionsPA != 0 {
		h.Sessions = d.sessions72(ser.SessionsPA)
	}
}

// strictSpan holds a 7.2 structure to one preserved block of its own,
// page aligned, of at most limit bytes (0: any).
func (d *decoder) strictSpan(where, what string, pa, size, limit uint64) {
	if d.claims == nil {
		return
	}
	switch {
	case pa%physmem.PageSize != 0:
		d.find(where, kernel.NoAction, "%s at %#x is not page aligned (kho_alloc_preserve hands out whole pages)", what, pa)
	case limit != 0 && size > limit:
		d.find(where, kernel.NoAction, "%s at %#x: %d bytes, more than the %d the kernel allocates", what, pa, size, limit)
	case !d.in.InOneBlock(pa, size):
		d.find(where, kernel.NoAction, "%s at %#x (%d bytes) spans preserved blocks; the kernel preserves each in one", what, pa, size)
	}
	if o := d.claim(what, pa, size); o != "" {
		d.find(where, kernel.NoAction, "%s at %#x shares a page with %s", what, pa, o)
	}
}

// claim records the pages of [pa, pa+size) as what's and returns the
// first other structure that already holds one of them ("" if none).
func (d *decoder) claim(what string, pa, size uint64) string {
	if d.claims == nil || size == 0 || pa+size < pa || size > kho.MaxFDTSize {
		return ""
	}
	for p := pa &^ (physmem.PageSize - 1); p < pa+size; p += physmem.PageSize {
		if o, ok := d.claims[p]; ok {
			return o
		}
	}
	for p := pa &^ (physmem.PageSize - 1); p < pa+size; p += physmem.PageSize {
		d.claims[p] = what
	}
	return ""
}

// bootRead is what the 7.2 kernel does with a structure it reads at boot
// that the handover does not hold: beyond the next kernel's RAM its read
// oopses (beyond); in RAM, or where kho-sim does not know the RAM, what
// lies there then decides.
func (d *decoder) bootRead(pa, size uint64, beyond kernel.Action) kernel.Action {
	if d.in.Outside(pa, size) == kho.OutsideBeyondRAM {
		return beyond
	}
	return kernel.DecidedOutside
}

// flbAt maps and decodes the FLB page, the same in every generation.
func (d *decoder) flbAt(pa uint64) {
	page, err := d.in.Map(pa, FLBPageSize)
	if err != nil {
		act := kernel.UsesBadAddress
		if d.h.Generation == kernel.V72 {
			act = d.bootRead(pa, FLBPageSize, kernel.OopsesFLBAtRetrieve)
		}
		d.find(WhereFLB, act, "FLB page %#x: %v", pa, err)
		return
	}
	t, findings := ReadFLBTable(d.h.Generation, pa, page)
	d.h.FLB = t
	d.h.Findings = append(d.h.Findings, findings...)
	if d.claims != nil {
		d.strictSpan(WhereFLB, "FLB page", pa, FLBPageSize, 0)
		for _, e := range t.Entries {
			if e.Count == 0 {
				d.find(WhereFLB, kernel.NoAction, "FLB entry %d (%q): count 0, but luo_flb_serialize writes only FLBs that files depend on", e.Index, e.Name)
			}
		}
	}
}

// ReadFLBTable decodes the FLB page at pa with the checks 7.0 and 7.2
// omit: pgcnt, the count against LUO_FLB_MAX, terminated and unique
// names. Findings speak of g's kernel.
func ReadFLBTable(g kernel.Generation, pa uint64, page []byte) (*FLBTable, []kernel.Finding) {
	var out []kernel.Finding
	find := func(a kernel.Action, format string, args ...any) {
		out = append(out, g.Find(WhereFLB, a, format, args...))
	}
	pgcnt, count, err := flb.ReadHeader(page)
	t := &FLBTable{PA: pa, PageCount: pgcnt, Count: count, Entries: []FLBEntry{}}
	if err != nil {
		find(kernel.ReadsPastPage, "FLB header: %v", err)
		return t, out
	}
	if pgcnt != flb.PageCount {
		find(kernel.ReadsPastPage, "FLB header pgcnt %d, want %d", pgcnt, flb.PageCount)
	}
	n := count
	if count > flb.Max {
		find(kernel.ReadsPastPage, "FLB header count %d above LUO_FLB_MAX %d", count, flb.Max)
		n = flb.Max
	}
	first := map[string]int{}
	for i := range int(n) {
		e, err := flb.ReadEntry(page, i)
		if err != nil {
			find(kernel.ReadsPastPage, "FLB entry %d: %v", i, err)
			break
		}
		name, terminated := e.NameString()
		t.Entries = append(t.Entries, FLBEntry{Index: i, Name: name, NameTerminated: terminated, Data: e.Data, Count: e.Count})
		if !terminated {
			find(kernel.ReadsPastPage, "FLB entry %d: name %q has no NUL in its %d bytes (strcmp runs past it)", i, name, flb.NameLen)
			continue
		}
		if j, dup := first[name]; dup {
			find(kernel.NoAction, "FLB entry %d repeats the name %q of entry %d; the kernel only ever finds the first", i, name, j)
			continue
		}
		first[name] = i
	}
	return t, out
}

// sessionBlockAt maps and decodes the single session block of luo-v1 and
// luo-v2 and every session's file block.
func (d *decoder) sessionBlockAt(pa uint64) {
	block, err := d.in.Map(pa, SessionBlockSize)
	if err != nil {
		d.find(WhereSessions, kernel.UsesBadAddress, "session block %#x: %v", pa, err)
		return
	}
	count := le.Uint64(block)
	t := &SessionTable{PA: pa, Count: count, Blocks: []Block{{PA: pa, Count: count}}, Sessions: []SessionEntry{}}
	d.h.Sessions = t
	n := count
	if count > SessionMax {
		d.find(WhereSessions, kernel.ReadsPastBlock, "session header count %d above LUO_SESSION_MAX %d", count, SessionMax)
		n = SessionMax
	}
	first := map[string]int{}
	for i := range int(n) {
		s, where := d.session(i, sessionEntry(block, i), first)
		d.files(&s, where)
		t.Sessions = append(t.Sessions, s)
	}
}

// session decodes one struct luo_session_ser, the same in every
// generation, and checks its name; first maps names to their first index.
func (d *decoder) session(i int, e []byte, first map[string]int) (SessionEntry, string) {
	raw, files, count := sessionSer(e)
	name, terminated := cfield(raw)
	s := SessionEntry{Index: i, Name: name, NameTerminated: terminated, FilesPA: files, Count: count, FileBlocks: []Block{}, Files: []FileEntry{}}
	where := fmt.Sprintf("session %d %q", i, name)
	if !terminated {
		d.find(WhereSessions, kernel.NoAction, "%s: name has no NUL in its %d bytes; the kernel keeps %d of them", where, SessionNameLen, SessionNameLen-1)
		name = name[:SessionNameLen-1]
	}
	if j, dup := first[name]; dup {
		d.find(WhereSessions, kernel.FailsOpen, "%s repeats the name of session %d (EEXIST)", where, j)
	} else {
		first[name] = i
	}
	return s, where
}

// noFileBlock reports a session without a file block, which the kernel
// WARNs about when the entry still claims files.
func (d *decoder) noFileBlock(s *SessionEntry, where string) bool {
	if s.FilesPA != 0 {
		return false
	}
	if s.Count != 0 {
		d.find(WhereSessions, kernel.WarnsNoFiles, "%s: %d files but no file block", where, s.Count)
	}
	return true
}

// files decodes one session's file block as luo_file_deserialize of 7.0
// reads it.
func (d *decoder) files(s *SessionEntry, where string) {
	if d.noFileBlock(s, where) {
		return
	}
	pa := s.FilesPA
	n := s.Count
	if n > FileMax {
		d.find(WhereSessions, kernel.ReadsPastBlock, "%s: file count %d above LUO_FILE_MAX %d", where, n, FileMax)
		n = FileMax
	}
	block, err := d.in.Map(pa, FileBlockSize)
	if err != nil {
		d.find(WhereSessions, kernel.UsesBadAddress, "%s: file block %#x: %v", where, pa, err)
		return
	}
	s.FileBlocks = append(s.FileBlocks, Block{PA: pa, Count: s.Count})
	entries := make([][]byte, n)
	for i := range entries {
		entries[i] = block[i*FileEntrySize:][:FileEntrySize]
	}
	d.fileEntries(s, where, entries, kernel.StopsAtFile)
}

// fileEntries decodes struct luo_file_ser entries, the same in every
// generation; unterminated is what the kernel does with a compatible that
// has no NUL.
func (d *decoder) fileEntries(s *SessionEntry, where string, entries [][]byte, unterminated kernel.Action) {
	tokens := map[uint64]int{}
	for i, e := range entries {
		raw, data, token := fileSer(e)
		compat, terminated := cfield(raw)
		f := FileEntry{Index: i, Compatible: compat, CompatibleTerminated: terminated, Data: data, Token: token}
		s.Files = append(s.Files, f)
		if !terminated {
			d.find(WhereSessions, unterminated, "%s file %d: compatible %q has no NUL in its %d bytes", where, i, compat, HandlerCompatLen)
		}
		if j, dup := tokens[f.Token]; dup {
			d.find(WhereSessions, kernel.NoAction, "%s file %d repeats token %#x of file %d; retrieving it finds the first", where, i, f.Token, j)
		} else {
			tokens[f.Token] = i
		}
	}
}

// sessions72 decodes 7.2's session chain and each session's file chain.
func (d *decoder) sessions72(head uint64) *SessionTable {
	blocks, entries, _ := d.chain("session", head, SessionEntrySize, kernel.PanicsAtBoot)
	t := &SessionTable{PA: head, Blocks: blocks, Sessions: []SessionEntry{}}
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
func (d *decoder) files72(s *SessionEntry, where string) {
	if d.noFileBlock(s, where) {
		return
	}
	blocks, entries, whole := d.chain(where+" file", s.FilesPA, FileEntrySize, kernel.FailsOpen)
	s.FileBlocks = blocks
	d.fileEntries(s, where, entries, kernel.FailsOpen)
	if whole && uint64(len(entries)) != s.Count {
		d.find(WhereSessions, kernel.FailsOpen, "%s: %d files in its blocks, %d in its entry (EINVAL)", where, len(entries), s.Count)
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
	per := uint64((BlockSize - BlockHeaderSize) / entrySize)
	set, err := followChain(head, func(pa uint64) ([]byte, error) {
		switch {
		case d.blocksLeft == 0:
			d.find(WhereSessions, kernel.NoAction, "%s blocks not read: the handover's chains pass %d blocks, the most kho-sim reads", what, MaxChainBlocks)
			return nil, errStop
		case pa%BlockSize != 0:
			d.find(WhereSessions, kernel.UsesBadAddress, "%s block %#x is not page aligned", what, pa)
			return nil, errStop
		}
		d.blocksLeft--
		blk, err := d.in.Map(pa, BlockSize)
		if err != nil {
			act := kernel.UsesBadAddress
			if what == "session" {
				act = d.bootRead(pa, BlockSize, kernel.OopsesSessionsAtBoot)
			}
			d.find(WhereSessions, act, "%s block %#x: %v", what, pa, err)
			return nil, errStop
		}
		if o := d.claim(what+" block", pa, BlockSize); o != "" {
			d.find(WhereSessions, kernel.NoAction, "%s block %#x is also %s", what, pa, o)
			return nil, errStop
		}
		return blk, nil
	})
	var ce *chainError
	if errors.As(err, &ce) {
		d.find(WhereSessions, refused, "%s %v (kho_block_set_restore: EINVAL)", what, ce)
	}
	blocks, whole = []Block{}, err == nil
	for _, b := range set {
		n := le.Uint64(b.mem[8:])
		blocks = append(blocks, Block{PA: b.pa, Count: n})
		if n == 0 || n > per {
			d.find(WhereSessions, refused, "%s block %#x: count %d, want 1 to %d (kho_block_set_restore: EINVAL)", what, b.pa, n, per)
			whole = false
			continue // 7.2 reads no entry of a set it refuses; these would be guesses
		}
		for i := range int(n) {
			entries = append(entries, b.mem[BlockHeaderSize+i*entrySize:][:entrySize])
		}
	}
	return blocks, entries, whole
}

// errStop ends a chain walk whose reason is already a finding.
var errStop = errors.New("chain walk stopped")

// Structures lists where the handover lies: the KHO root and children
// (kho.Incoming.Structures), then luo_ser, the session and file blocks and
// the FLB page.
func (h *Handover) Structures() []kho.Structure {
	out := h.In.Structures()
	if h.Ser != nil {
		if h.Generation != kernel.V72 { // 7.2's is the LUO child itself
			out = append(out, kho.Structure{What: "luo_ser", PA: h.Ser.PA, Size: h.Ser.Size})
		}
	}
	if t := h.Sessions; t != nil {
		size := uint64(BlockSize)
		if h.Generation != kernel.V72 {
			size = SessionBlockSize
		}
		for i, b := range t.Blocks {
			out = append(out, kho.Structure{What: fmt.Sprintf("session block %d", i), PA: b.PA, Size: size})
		}
		for _, s := range t.Sessions {
			size := uint64(BlockSize)
			if h.Generation != kernel.V72 {
				size = FileBlockSize
			}
			for i, b := range s.FileBlocks {
				out = append(out, kho.Structure{What: fmt.Sprintf("session %q file block %d", s.Name, i), PA: b.PA, Size: size})
			}
		}
	}
	if h.FLB != nil {
		out = append(out, kho.Structure{What: "FLB page", PA: h.FLB.PA, Size: FLBPageSize})
	}
	slices.SortStableFunc(out, func(a, b kho.Structure) int { return cmp.Compare(a.PA, b.PA) })
	return out
}

// Pages lists every page the handover occupies, ascending: those of each
// structure and the memory map's own. With the scratch array and the
// files' own data they are what a dump of the handover must hold.
func (h *Handover) Pages() []uint64 {
	set := map[uint64]bool{}
	for _, s := range h.Structures() {
		if s.Size == 0 || s.Size > kho.MaxFDTSize {
			continue
		}
		for p := s.PA &^ (physmem.PageSize - 1); p < s.PA+s.Size; p += physmem.PageSize {
			set[p] = true
		}
	}
	for _, p := range h.In.MapPages() {
		set[p] = true
	}
	return slices.Sorted(maps.Keys(set))
}

// cfield returns a fixed-size C string field up to its first NUL, and
// whether it has one.
func cfield(b []byte) (string, bool) {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return string(b[:i]), true
	}
	return string(b), false
}

// Read reads the whole handover whose root FDT is at rootPA in mem as a
// reader that accepts nothing wrong does (the guest's /dev/mem reader, the
// tools over a real kernel's dump): the KHO root and memory map, the LUO
// state and, in 7.2, the kexec-metadata. The error is the first problem;
// the handover comes back with it whenever the KHO side could be read, so
// that what was read can still be shown.
func Read(mem kho.Memory, rootPA uint64) (*Handover, error) {
	in, err := kho.ReadIncoming(mem, rootPA)
	if err != nil {
		return nil, ExplainRootDamage(err, kernel.V72)
	}
	h := Decode(in, DecodeOptions{})
	if in.Compatible() == kho.CompatibleV4 && slices.Contains(in.SubtreeNames(), kho.KexecMetadataName) {
		m, err := in.KexecMetadata()
		if err != nil {
			h.Findings = append(h.Findings, h.Generation.Find("kexec-metadata", kernel.IgnoresMetadata, "%v", err))
		} else {
			h.KexecMetadata = &m
		}
	}
	return h, h.Err()
}

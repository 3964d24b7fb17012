package gen72

import (
	"encoding/binary"
	"fmt"
)

// The LUO ABI of Linux 7.2 (include/linux/kho/abi/luo.h).
const (
	// LUOCompatible is LUO_ABI_COMPATIBLE.
	LUOCompatible = "luo-v5"
	// LUOSize is sizeof(struct luo_ser): char compatible[8]; u64
	// liveupdate_num; u64 sessions_pa; u64 flbs_pa.
	LUOSize = 32
	// SessionNameLen is LIVEUPDATE_SESSION_NAME_LENGTH.
	SessionNameLen = 64
	// CompatLen is LIVEUPDATE_HNDL_COMPAT_LENGTH and
	// LIVEUPDATE_FLB_COMPAT_LENGTH.
	CompatLen = 48
	// SessionEntrySize is sizeof(struct luo_session_ser): name[64] and
	// struct luo_file_set_ser {u64 files; u64 count}.
	SessionEntrySize = 80
	// FileEntrySize is sizeof(struct luo_file_ser): compatible[48]; u64
	// data; u64 token.
	FileEntrySize = 64
	// FLBHeaderSize is sizeof(struct luo_flb_header_ser): u64 pgcnt; u64 count.
	FLBHeaderSize = 16
	// FLBEntrySize is sizeof(struct luo_flb_ser): name[48]; u64 data; u64 count.
	FLBEntrySize = 64
	// FLBPages is LUO_FLB_PGCNT, the pgcnt 7.2 writes.
	FLBPages = 1
	// MaxFLBPages bounds the pgcnt the reader follows.
	MaxFLBPages = 16
	// SessionsPerBlock and FilesPerBlock are the block capacities.
	SessionsPerBlock = (PageSize - blockHeaderSize) / SessionEntrySize
	FilesPerBlock    = (PageSize - blockHeaderSize) / FileEntrySize
)

// LUO is the decoded "LUO" child: struct luo_ser and all it points to.
type LUO struct {
	PA            uint64 // the luo_ser blob
	Size          uint64 // its blob-size
	LiveupdateNum uint64 // liveupdate_num: incoming + 1, 1 after a cold boot
	SessionsPA    uint64 // first session block, 0 if none
	FLBsPA        uint64 // FLB header, 0 if none
	// SessionBlocks are the session block PAs in list order.
	SessionBlocks []uint64
	Sessions      []Session
	FLB           *FLBTable // nil if FLBsPA is 0
}

// Session is one struct luo_session_ser and its files.
type Session struct {
	Name       string
	FilesPA    uint64 // file_set_ser.files: first file block, 0 if none
	FileCount  uint64 // file_set_ser.count
	FileBlocks []uint64
	Files      []File
}

// File is one struct luo_file_ser.
type File struct {
	Compatible string // the file handler, e.g. "memfd-v2"
	Data       uint64 // the handler's handle (memfd: PA of struct memfd_luo_ser)
	Token      uint64 // the user's token
}

// FLBTable is the FLB page: struct luo_flb_header_ser and its entries.
type FLBTable struct {
	PA        uint64
	PageCount uint64 // pgcnt
	Entries   []FLB
}

// FLB is one struct luo_flb_ser.
type FLB struct {
	Name  string // the FLB's compatible
	Data  uint64 // the handle its .preserve returned
	Count uint64 // files that depended on it at serialization
}

// Session returns the session called name, or nil.
func (l *LUO) Session(name string) *Session {
	for i := range l.Sessions {
		if l.Sessions[i].Name == name {
			return &l.Sessions[i]
		}
	}
	return nil
}

// FileCount is the number of files over all sessions.
func (l *LUO) FileCount() int {
	n := 0
	for _, s := range l.Sessions {
		n += len(s.Files)
	}
	return n
}

// ReadLUO decodes the LUO child sub and everything it points to. It checks
// what luo_early_startup, kho_block_set_restore, luo_session_deserialize
// and luo_file_deserialize check, and more: the compatible string, block
// counts and cycles, file counts against the session's count, unique
// session names, tokens and FLB names, terminated strings, FLB counts
// within the page, and no page used twice.
func ReadLUO(mem Memory, sub Subtree) (*LUO, error) {
	br := &blockReader{mem: mem, claimed: newClaims()}
	return readLUO(br, sub)
}

func readLUO(br *blockReader, sub Subtree) (*LUO, error) {
	if sub.Size < LUOSize || sub.Size > PageSize {
		return nil, fmt.Errorf("LUO blob at %#x: blob-size %d, want %d..%d: %w", sub.PA, sub.Size, LUOSize, PageSize, ErrBadSize)
	}
	if err := checkPage("LUO blob", sub.PA); err != nil {
		return nil, err
	}
	if err := br.claimed.claim("LUO blob", sub.PA, sub.Size); err != nil {
		return nil, err
	}
	b, err := read(br.mem, "LUO blob", sub.PA, LUOSize)
	if err != nil {
		return nil, err
	}
	compat, err := cstring("LUO compatible", b[:8])
	if err != nil {
		return nil, fmt.Errorf("LUO blob at %#x: %w: %w", sub.PA, ErrBadCompatible, err)
	}
	if compat != LUOCompatible {
		return nil, fmt.Errorf("LUO blob at %#x: compatible %q, want %q: %w", sub.PA, compat, LUOCompatible, ErrBadCompatible)
	}
	le := binary.LittleEndian
	l := &LUO{
		PA:            sub.PA,
		Size:          sub.Size,
		LiveupdateNum: le.Uint64(b[8:]),
		SessionsPA:    le.Uint64(b[16:]),
		FLBsPA:        le.Uint64(b[24:]),
	}
	if l.LiveupdateNum == 0 {
		return nil, fmt.Errorf("LUO blob at %#x: liveupdate number 0 (a cold boot hands over 1): %w", sub.PA, ErrBadCount)
	}
	if err := readSessions(br, l); err != nil {
		return nil, err
	}
	if l.FLBsPA != 0 {
		if l.FLB, err = readFLB(br, l.FLBsPA); err != nil {
			return nil, err
		}
	}
	return l, nil
}

func readSessions(br *blockReader, l *LUO) error {
	c, err := br.read("sessions", l.SessionsPA, SessionEntrySize)
	if err != nil {
		return err
	}
	l.SessionBlocks = c.blocks
	names := make(map[string]bool, len(c.entries))
	le := binary.LittleEndian
	for i, e := range c.entries {
		name, err := cstring(fmt.Sprintf("session %d name", i), e[:SessionNameLen])
		if err != nil {
			return err
		}
		if names[name] {
			return fmt.Errorf("session %d: name %q: %w", i, name, ErrDuplicate)
		}
		names[name] = true
		s := Session{Name: name, FilesPA: le.Uint64(e[64:]), FileCount: le.Uint64(e[72:])}
		if err := readFiles(br, &s); err != nil {
			return fmt.Errorf("session %q: %w", name, err)
		}
		l.Sessions = append(l.Sessions, s)
	}
	return nil
}

func readFiles(br *blockReader, s *Session) error {
	if s.FilesPA == 0 {
		if s.FileCount != 0 {
			return fmt.Errorf("no file blocks but count %d: %w", s.FileCount, ErrBadCount)
		}
		return nil
	}
	c, err := br.read(fmt.Sprintf("session %q files", s.Name), s.FilesPA, FileEntrySize)
	if err != nil {
		return err
	}
	if uint64(len(c.entries)) != s.FileCount {
		return fmt.Errorf("file blocks hold %d files, session count %d: %w", len(c.entries), s.FileCount, ErrBadCount)
	}
	s.FileBlocks = c.blocks
	tokens := make(map[uint64]bool, len(c.entries))
	le := binary.LittleEndian
	for i, e := range c.entries {
		compat, err := cstring(fmt.Sprintf("file %d compatible", i), e[:CompatLen])
		if err != nil {
			return err
		}
		f := File{Compatible: compat, Data: le.Uint64(e[48:]), Token: le.Uint64(e[56:])}
		if tokens[f.Token] {
			return fmt.Errorf("file %d: token %#x: %w", i, f.Token, ErrDuplicate)
		}
		tokens[f.Token] = true
		s.Files = append(s.Files, f)
	}
	return nil
}

// readFLB decodes the FLB page. The kernel trusts the header (it checks
// count against neither 63 nor pgcnt); the reader does not.
func readFLB(br *blockReader, pa uint64) (*FLBTable, error) {
	if err := checkPage("FLB page", pa); err != nil {
		return nil, err
	}
	if err := br.claimed.claim("FLB page", pa, PageSize); err != nil {
		return nil, err
	}
	h, err := read(br.mem, "FLB header", pa, FLBHeaderSize)
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	t := &FLBTable{PA: pa, PageCount: le.Uint64(h)}
	count := le.Uint64(h[8:])
	if t.PageCount == 0 || t.PageCount > MaxFLBPages {
		return nil, fmt.Errorf("FLB page at %#x: pgcnt %d, want 1..%d: %w", pa, t.PageCount, MaxFLBPages, ErrBadSize)
	}
	size := t.PageCount * PageSize
	if max := (size - FLBHeaderSize) / FLBEntrySize; count > max {
		return nil, fmt.Errorf("FLB page at %#x: count %d over the %d entries of %d pages: %w", pa, count, max, t.PageCount, ErrBadCount)
	}
	if err := br.claimed.claim("FLB page", pa+PageSize, size-PageSize); err != nil {
		return nil, err
	}
	b, err := read(br.mem, "FLB page", pa, FLBHeaderSize+count*FLBEntrySize)
	if err != nil {
		return nil, err
	}
	names := make(map[string]bool, count)
	for i := uint64(0); i < count; i++ {
		e := b[FLBHeaderSize+i*FLBEntrySize:][:FLBEntrySize]
		name, err := cstring(fmt.Sprintf("FLB %d name", i), e[:CompatLen])
		if err != nil {
			return nil, err
		}
		if names[name] {
			return nil, fmt.Errorf("FLB %d: name %q: %w", i, name, ErrDuplicate)
		}
		names[name] = true
		f := FLB{Name: name, Data: le.Uint64(e[48:]), Count: le.Uint64(e[56:])}
		// luo_flb_serialize writes only FLBs that files still depend on.
		if f.Count == 0 {
			return nil, fmt.Errorf("FLB %d %q: count 0: %w", i, name, ErrBadCount)
		}
		t.Entries = append(t.Entries, f)
	}
	return t, nil
}

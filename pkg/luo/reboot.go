package luo

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/pkg/kernel"
)

// Serialize models liveupdate_reboot, run by reboot(LINUX_REBOOT_CMD_KEXEC):
// luo_session_serialize, then luo_flb_serialize (kho_finalize belongs to
// KHO). Sessions are serialized in creation order: each session's files are
// frozen and written to its file block, then its name (strscpy, 63 bytes)
// into the session block, then the session count. If a Freeze fails, that
// session's earlier files are unfrozen, the sessions before it are unfrozen
// in reverse with their entries' names cleared, FLBs are not serialized, and
// the error is returned; the files stay preserved (Abort drops them).
// A disabled LUO serializes nothing and succeeds, as in 7.0.
func (c *Core) Serialize() error {
	if !c.Enabled() {
		return nil
	}
	if err := c.serializeSessions(); err != nil {
		return fmt.Errorf("liveupdate reboot: %w", err)
	}
	if err := c.flb.Serialize(); err != nil {
		return fmt.Errorf("liveupdate reboot: %w", err)
	}
	return nil
}

func sessionEntry(block []byte, i int) []byte {
	return block[SessionHeaderSize+i*SessionEntrySize:][:SessionEntrySize]
}

// serializeSessions models luo_session_serialize. In kernel.V72 the entries
// go into the linked blocks, each block's count set as its entries are
// reserved, and luo_ser.sessions_pa is 0 unless it succeeds with at least
// one session.
func (c *Core) serializeSessions() error {
	l := &c.outgoing
	l.rw.Lock()
	defer l.rw.Unlock()
	if !l.active {
		return fmt.Errorf("session serialize: outgoing block not set up: %w", unix.EINVAL)
	}
	v5 := c.format == kernel.V72
	if v5 {
		le.PutUint64(c.ser[serSessionsOff(c.format):], 0)
	}
	// entry reserves session i's slot; slot finds it again for the undo.
	entry := func(i int) []byte { return sessionEntry(l.block, i) }
	slot := entry
	if v5 {
		entry, slot = l.blocks.reserve, l.blocks.slot
	}
	for i, s := range l.sessions {
		e := entry(i)
		if e == nil {
			err := fmt.Errorf("session serialize: WARN_ON(no block for session %d): %w", i, unix.ENOSPC)
			c.unfreezeSessions(l, i, slot)
			return err
		}
		s.mu.Lock()
		err := s.freeze(e)
		s.mu.Unlock()
		if err != nil {
			c.unfreezeSessions(l, i, slot)
			return err
		}
		strscpy(e[:SessionNameLen], s.name)
	}
	if v5 {
		if len(l.sessions) > 0 {
			le.PutUint64(c.ser[serSessionsOff(c.format):], l.blocks.headPA())
		}
		return nil
	}
	le.PutUint64(l.block, uint64(len(l.sessions)))
	return nil
}

// unfreezeSessions undoes a failed serialization: the sessions before the
// n-th are unfrozen in reverse and their entries' names cleared.
func (c *Core) unfreezeSessions(l *sessionList, n int, entry func(int) []byte) {
	for j := n - 1; j >= 0; j-- {
		prev := l.sessions[j]
		pe := entry(j)
		prev.mu.Lock()
		prev.unfreeze(pe)
		prev.mu.Unlock()
		clear(pe[:SessionNameLen])
	}
}

// deserialize models luo_session_deserialize, run by the first open of
// /dev/liveupdate. Its result is sticky. Sessions are restored in block
// order (name by strscpy, 63 bytes); a duplicate name fails with EEXIST,
// leaving the sessions restored so far in place, as in 7.0.
func (c *Core) deserialize() error {
	c.openMu.Lock()
	defer c.openMu.Unlock()
	if c.deserialized {
		return c.deserializeEr
	}
	c.deserialized = true
	c.deserializeEr = c.bootError(c.deserializeSessions())
	return c.deserializeEr
}

func (c *Core) deserializeSessions() error {
	l := &c.incoming
	l.rw.RLock()
	block, blocks, active := l.block, l.blocks, l.active
	l.rw.RUnlock()
	if !active {
		return nil
	}
	var entries [][]byte
	if blocks != nil {
		entries = blocks.entries()
	} else {
		n := le.Uint64(block)
		if n > SessionMax {
			return &BootError{
				Err:          fmt.Errorf("session count %d exceeds %d: %w", n, SessionMax, unix.EINVAL),
				KernelAction: kernel.ReadsPastBlock,
			}
		}
		for i := range int(n) {
			entries = append(entries, sessionEntry(block, i))
		}
	}
	for _, e := range entries {
		name, files, count := sessionSer(e)
		s := &Session{core: c, incoming: true, name: sessionName(cstring(name))}
		if err := l.insert(s, false); err != nil {
			c.warn(fmt.Errorf("deserialize: insert session: %w", err))
			return err
		}
		s.mu.Lock()
		err := c.deserializeFiles(s, files, count)
		s.mu.Unlock()
		if err == nil {
			continue
		}
		var refused *BootError
		if errors.As(err, &refused) || c.opts.PropagateFileDeserializeErrors {
			return fmt.Errorf("session %q: %w", s.name, err)
		}
		c.warn(fmt.Errorf("session %q: file deserialize error ignored: %w", s.name, err))
	}
	// kho_restore_free of the session block: the model only drops it.
	l.rw.Lock()
	l.block, l.blocks = nil, nil
	l.rw.Unlock()
	return nil
}

// deserializeFiles models luo_file_deserialize: count and block are taken
// first, then each entry is matched to a registered handler by strcmp; the
// first entry without one ends the walk with ENOENT (the files before it
// stay). Beyond 7.0: a count above FileMax or an unpreserved block is a
// *BootError instead of a read outside the block.
func (c *Core) deserializeFiles(s *Session, pa, count uint64) error {
	if pa == 0 {
		if count != 0 {
			c.warn(fmt.Errorf("session %q: WARN_ON: %d files but no file block", s.name, count))
		}
		return nil
	}
	if c.readFormat == kernel.V72 {
		return c.deserializeFilesV5(s, pa, count)
	}
	if count > FileMax {
		return &BootError{
			Err:          fmt.Errorf("file count %d exceeds %d: %w", count, FileMax, unix.EINVAL),
			KernelAction: kernel.ReadsPastBlock,
		}
	}
	block, err := c.mem.Map(pa, FileBlockSize)
	if err == nil && len(block) < FileBlockSize {
		err = fmt.Errorf("mapped %d bytes: %w", len(block), unix.EFAULT)
	}
	if err != nil {
		return &BootError{Err: fmt.Errorf("file block at %#x: %w", pa, err), KernelAction: kernel.ReadsUnpreserved}
	}
	s.set.count = int64(count)
	s.set.block, s.set.blockPA, s.set.mapped = block[:FileBlockSize], pa, true
	handlers := c.handlerList()
	for i := range int(count) {
		f, err := fileFromEntry(handlers, block[i*FileEntrySize:][:FileEntrySize])
		if err != nil {
			return err
		}
		s.set.files = append(s.set.files, f)
	}
	return nil
}

// fileFromEntry matches one serialized file entry (the same 64 bytes in
// 7.0 and 7.2) to the first registered handler of its compatible (ENOENT
// if none) and returns the incoming file.
func fileFromEntry(handlers []*FileHandler, e []byte) (*luoFile, error) {
	compat, data, token := fileSer(e)
	for _, h := range handlers {
		if compatMatches(h.Compatible, e) {
			return &luoFile{fh: h, data: data, token: token}, nil
		}
	}
	return nil, fmt.Errorf("no registered handler for compatible %q: %w", cstring(compat), unix.ENOENT)
}

// deserializeFilesV5 models 7.2's luo_file_deserialize: the file block
// chain is restored (a cycle or a block count of 0 or above 63 is EINVAL),
// every entry matched to a handler (ENOENT if none), and the entries found
// must number count (EINVAL otherwise). On any error the session keeps no
// file, as 7.2 frees them all.
func (c *Core) deserializeFilesV5(s *Session, pa, count uint64) error {
	bs, err := restoreBlockSet(c.mem, FileEntrySize, pa)
	if err != nil {
		return fmt.Errorf("file blocks: %w", err)
	}
	handlers := c.handlerList()
	var files []*luoFile
	for _, e := range bs.entries() {
		f, err := fileFromEntry(handlers, e)
		if err != nil {
			return err
		}
		files = append(files, f)
	}
	if uint64(len(files)) != count {
		return fmt.Errorf("file count mismatch: expected %d, found %d: %w", count, len(files), unix.EINVAL)
	}
	s.set.files, s.set.count, s.set.blocks = files, int64(len(files)), bs
	return nil
}

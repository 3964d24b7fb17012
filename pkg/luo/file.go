package luo

import (
	"fmt"
	"slices"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/pkg/kernel"
)

// luoFile models struct luo_file.
type luoFile struct {
	fh        *FileHandler
	token     uint64
	mu        sync.Mutex
	file      any // nil in the new kernel until retrieved
	data      uint64
	private   any
	retrieved bool
}

// fileSet models struct luo_file_set. count is the kernel's file_set->count,
// which after an ignored deserialization error exceeds len(files).
type fileSet struct {
	files   []*luoFile // ordered by preservation time
	count   int64
	block   []byte // luo_file_ser array: allocated (outgoing) or mapped (incoming)
	blockPA uint64
	mapped  bool // block came from the previous kernel
	// blocks replaces block in kernel.V72: linked one-page blocks, grown and
	// shrunk per file (outgoing) or restored from the chain (incoming).
	blocks *blockSet
}

// v5 reports whether the session's kernel uses 7.2's linked file blocks.
func (s *Session) v5() bool { return s.core.format == kernel.V72 }

// reserveFileSlot makes room for one more file: luo_alloc_files_mem in 7.0,
// kho_block_set_grow(count + 1) in 7.2.
func (s *Session) reserveFileSlot() error {
	if !s.v5() {
		return s.allocFilesMem()
	}
	if s.set.blocks == nil {
		s.set.blocks = newBlockSet(FileEntrySize)
	}
	if err := s.set.blocks.grow(s.core.mem, int(s.set.count)+1); err != nil {
		return fmt.Errorf("file blocks: %w", err)
	}
	return nil
}

// releaseFileSlots frees what the files no longer need: luo_free_files_mem
// in 7.0, kho_block_set_shrink(count) in 7.2.
func (s *Session) releaseFileSlots() {
	if !s.v5() {
		s.freeFilesMem()
		return
	}
	if s.set.blocks == nil {
		return
	}
	if err := s.set.blocks.shrink(s.core.mem, int(s.set.count)); err != nil {
		s.core.warn(fmt.Errorf("session %q: free file blocks: %w", s.name, err))
	}
}

// allocFilesMem models luo_alloc_files_mem.
func (s *Session) allocFilesMem() error {
	if s.set.block != nil {
		return nil
	}
	pa, mem, err := s.core.mem.AllocPreserve(FileBlockSize)
	if err != nil {
		return fmt.Errorf("allocate file block: %w", err)
	}
	s.set.block, s.set.blockPA, s.set.mapped = mem, pa, false
	return nil
}

// freeFilesMem models luo_free_files_mem: the block goes only with the last file.
func (s *Session) freeFilesMem() {
	if s.set.count != 0 || s.set.block == nil {
		return
	}
	if !s.set.mapped {
		if err := s.core.mem.UnpreserveFree(s.set.blockPA); err != nil {
			s.core.warn(fmt.Errorf("session %q: free file block: %w", s.name, err))
		}
	}
	s.set.block, s.set.blockPA = nil, 0
}

// PreserveFile models LIVEUPDATE_SESSION_PRESERVE_FD (luo_preserve_file):
// file is the object a handler's CanPreserve recognises (the kernel's struct
// file). Steps in the kernel's order: EEXIST if token is used in this
// session, ENOSPC at FileMax files, EBADF for a nil file, the session's file
// block allocated on first use, the first handler whose CanPreserve accepts
// the file (ENOENT if none), the handler's FLBs preserved
// (flb.Kernel.FilePreserve), then the handler's Preserve; if that fails the
// FLBs are unpreserved. Any failure frees a block that holds no file.
// kernel.V72 has no FileMax: the file blocks grow by one page per 63 files,
// up to MaxBlocks (ENOSPC).
func (s *Session) PreserveFile(token uint64, file any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("session %q: %w", s.name, unix.EBADF)
	}
	if err := s.preserveFile(token, file); err != nil {
		return fmt.Errorf("session %q: preserve token %#x: %w", s.name, token, err)
	}
	return nil
}

func (s *Session) preserveFile(token uint64, file any) error {
	if slices.ContainsFunc(s.set.files, func(f *luoFile) bool { return f.token == token }) {
		return fmt.Errorf("token in use: %w", unix.EEXIST)
	}
	if !s.v5() && s.set.count == FileMax {
		return fmt.Errorf("%d files preserved: %w", FileMax, unix.ENOSPC)
	}
	if file == nil {
		return fmt.Errorf("no file: %w", unix.EBADF)
	}
	if err := s.reserveFileSlot(); err != nil {
		return err
	}
	var fh *FileHandler
	for _, h := range s.core.handlerList() {
		if h.Ops.CanPreserve(h, file) {
			fh = h
			break
		}
	}
	if fh == nil {
		s.releaseFileSlots()
		return fmt.Errorf("no file handler: %w", unix.ENOENT)
	}
	if err := s.core.flb.FilePreserve(&fh.FileHandler); err != nil {
		s.releaseFileSlots()
		return err
	}
	args := FileOpArgs{Handler: fh, File: file}
	if err := fh.Ops.Preserve(&args); err != nil {
		s.core.flb.FileUnpreserve(&fh.FileHandler)
		s.releaseFileSlots()
		return fmt.Errorf("handler %q preserve: %w", fh.Compatible, err)
	}
	s.set.files = append(s.set.files, &luoFile{
		fh: fh, token: token, file: file, data: args.SerializedData, private: args.PrivateData,
	})
	s.set.count++
	return nil
}

// unpreserveFiles models luo_file_unpreserve_files: newest file first, the
// handler's Unpreserve and then its FLBs'. Caller holds s.mu.
func (s *Session) unpreserveFiles() {
	for len(s.set.files) > 0 {
		f := s.set.files[len(s.set.files)-1]
		f.fh.Ops.Unpreserve(&FileOpArgs{Handler: f.fh, File: f.file, SerializedData: f.data, PrivateData: f.private})
		s.core.flb.FileUnpreserve(&f.fh.FileHandler)
		s.set.files = s.set.files[:len(s.set.files)-1]
		s.set.count--
	}
	s.releaseFileSlots()
}

// freeze models luo_file_freeze: every file in preservation order gets its
// handler's Freeze, then its luo_file_ser entry (compatible by strscpy, data,
// token); finally the session entry's files and count. If a Freeze fails the
// files before it are unfrozen and the block is zeroed. Caller holds s.mu.
func (s *Session) freeze(entry []byte) error {
	if s.set.count == 0 {
		return nil
	}
	if s.v5() {
		return s.freezeV5(entry)
	}
	if s.set.block == nil {
		return fmt.Errorf("session %q: WARN_ON(no file block): %w", s.name, unix.EINVAL)
	}
	for i, f := range s.set.files {
		if err := f.freeze(); err != nil {
			s.unfreezeFiles(s.set.files[:i])
			return fmt.Errorf("session %q: freeze token %#x: %w", s.name, f.token, err)
		}
		putFileSer(s.set.block[i*FileEntrySize:][:FileEntrySize], f.fh.Compatible, f.data, f.token)
	}
	putFileSet(entry, s.set.blockPA, uint64(s.set.count))
	return nil
}

// freezeV5 models 7.2's luo_file_freeze: each file's entry is reserved in
// the block set (setting its block's count), the file frozen, the entry
// written; the session entry gets the first block's address and the count.
func (s *Session) freezeV5(entry []byte) error {
	for i, f := range s.set.files {
		var e []byte
		if s.set.blocks != nil {
			e = s.set.blocks.reserve(i)
		}
		if e == nil {
			s.unfreezeFiles(s.set.files[:i])
			return fmt.Errorf("session %q: WARN_ON(no file block for file %d): %w", s.name, i, unix.ENOSPC)
		}
		if err := f.freeze(); err != nil {
			s.unfreezeFiles(s.set.files[:i])
			return fmt.Errorf("session %q: freeze token %#x: %w", s.name, f.token, err)
		}
		putFileSer(e, f.fh.Compatible, f.data, f.token)
	}
	putFileSet(entry, s.set.blocks.headPA(), uint64(s.set.count))
	return nil
}

func (f *luoFile) freeze() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fh.Ops.Freeze == nil {
		return nil
	}
	args := FileOpArgs{Handler: f.fh, File: f.file, SerializedData: f.data, PrivateData: f.private}
	if err := f.fh.Ops.Freeze(&args); err != nil {
		return err
	}
	f.data = args.SerializedData
	return nil
}

// unfreezeFiles models __luo_file_unfreeze: Unfreeze for the given files in
// order and, as in 7.0, their serialized data reset to 0 (a later
// Unpreserve sees 0); then the file block is zeroed.
func (s *Session) unfreezeFiles(files []*luoFile) {
	for _, f := range files {
		f.mu.Lock()
		if f.fh.Ops.Unfreeze != nil {
			f.fh.Ops.Unfreeze(&FileOpArgs{Handler: f.fh, File: f.file, SerializedData: f.data, PrivateData: f.private})
		}
		f.data = 0
		f.mu.Unlock()
	}
	clear(s.set.block)
	if s.set.blocks != nil {
		s.set.blocks.clear()
	}
}

// unfreeze models luo_file_unfreeze for a session whose freeze succeeded.
func (s *Session) unfreeze(entry []byte) {
	if s.set.count == 0 {
		return
	}
	s.unfreezeFiles(s.set.files)
	clear(entry[SessionNameLen:SessionEntrySize])
}

// RetrieveFile models LIVEUPDATE_SESSION_RETRIEVE_FD (luo_retrieve_file):
// the handler's Retrieve runs at most once per file; later calls return the
// same file. Errors: ENOENT (no such token), the Retrieve error (the file
// stays unretrieved), EBADF after Close.
func (s *Session) RetrieveFile(token uint64) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("session %q: %w", s.name, unix.EBADF)
	}
	i := slices.IndexFunc(s.set.files, func(f *luoFile) bool { return f.token == token })
	if i < 0 {
		return nil, fmt.Errorf("session %q: retrieve token %#x: %w", s.name, token, unix.ENOENT)
	}
	f := s.set.files[i]
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.retrieved {
		return f.file, nil
	}
	args := FileOpArgs{Handler: f.fh, SerializedData: f.data}
	if err := f.fh.Ops.Retrieve(&args); err != nil {
		return nil, fmt.Errorf("session %q: handler %q retrieve token %#x: %w", s.name, f.fh.Compatible, token, err)
	}
	f.file, f.retrieved = args.File, true
	return f.file, nil
}

// Finish models LIVEUPDATE_SESSION_FINISH (luo_file_finish): every file must
// pass its handler's CanFinish first (EBUSY, nothing finished, otherwise);
// then files finish newest first: the handler's Finish, then its FLBs'
// (flb.Kernel.FileFinish, whose WARN_ONs go to Core.Warnings). As in 7.0 it
// works on any session, outgoing ones included.
func (s *Session) Finish() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("session %q: %w", s.name, unix.EBADF)
	}
	if err := s.finish(); err != nil {
		return fmt.Errorf("session %q: finish: %w", s.name, err)
	}
	return nil
}

func (s *Session) finish() error {
	if s.set.count == 0 {
		return nil
	}
	for _, f := range s.set.files {
		if !f.canFinish() {
			return fmt.Errorf("handler %q cannot finish token %#x: %w", f.fh.Compatible, f.token, unix.EBUSY)
		}
	}
	for len(s.set.files) > 0 {
		f := s.set.files[len(s.set.files)-1]
		f.mu.Lock()
		f.fh.Ops.Finish(&FileOpArgs{Handler: f.fh, File: f.file, SerializedData: f.data, Retrieved: f.retrieved})
		if err := s.core.flb.FileFinish(&f.fh.FileHandler); err != nil {
			s.core.warn(fmt.Errorf("session %q: token %#x: FLB finish: %w", s.name, f.token, err))
		}
		f.mu.Unlock()
		s.set.files = s.set.files[:len(s.set.files)-1]
		s.set.count--
	}
	// kho_restore_free of the incoming block: the model only drops it.
	// An outgoing session's 7.2 blocks are unpreserved and freed.
	if bs := s.set.blocks; bs != nil && !bs.incoming {
		if err := bs.destroy(s.core.mem); err != nil {
			s.core.warn(fmt.Errorf("session %q: free file blocks: %w", s.name, err))
		}
	}
	s.set.block, s.set.blockPA, s.set.blocks = nil, 0, nil
	return nil
}

func (f *luoFile) canFinish() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fh.Ops.CanFinish == nil {
		return true
	}
	return f.fh.Ops.CanFinish(&FileOpArgs{Handler: f.fh, File: f.file, SerializedData: f.data, Retrieved: f.retrieved})
}

// Tokens returns the tokens of the session's files in preservation order.
func (s *Session) Tokens() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var t []uint64
	for _, f := range s.set.files {
		t = append(t, f.token)
	}
	return t
}

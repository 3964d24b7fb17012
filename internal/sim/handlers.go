package sim

import (
	"fmt"
	"slices"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/internal/payload"
	"github.com/kho-sim/kho-sim/internal/scenario"
	"github.com/kho-sim/kho-sim/pkg/luo"
	"github.com/kho-sim/kho-sim/pkg/memfd"
)

// simHandler is a simulated file handler: preserve saves the file's
// payload, retrieve verifies it against what the previous boot handed
// over, and it keeps kho-sim's count of preserved files on its FLBs.
type simHandler struct {
	decl scenario.Handler
	h    *luo.FileHandler
	sys  *subsys
	// flbs are the FLBs registered for it, as kho-sim registered them.
	// Only serial steps change the list.
	flbs []*simFLB
}

// handlerSet is a boot's file handlers by name.
type handlerSet map[string]*simHandler

// newHandlers builds the scenario's file handlers, not yet registered.
func newHandlers(decls []scenario.Handler, sys *subsys) handlerSet {
	s := handlerSet{}
	for _, d := range decls {
		h := &simHandler{decl: d, sys: sys}
		h.h = &luo.FileHandler{Compatible: d.Name, Ops: luo.FileOps{
			CanPreserve: h.canPreserve, Preserve: h.preserve, Unpreserve: h.unpreserve,
			Retrieve: h.retrieve, CanFinish: h.canFinish, Finish: h.finish,
		}}
		s[d.Name] = h
	}
	return s
}

// countFiles adds d to the preserved files of handler's FLBs.
func (s handlerSet) countFiles(handler string, d int) {
	if h := s[handler]; h != nil {
		h.countFiles(d)
	}
}

// isMemfd reports whether handler saves memfd-v2 state.
func (s handlerSet) isMemfd(handler string) bool {
	h := s[handler]
	return h != nil && h.decl.Memfd
}

// link and unlink follow a successful FLB registration or unregistration.
func (h *simHandler) link(f *simFLB) { h.flbs = append(h.flbs, f) }

func (h *simHandler) unlink(name string) {
	h.flbs = slices.DeleteFunc(h.flbs, func(f *simFLB) bool { return f.decl.Name == name })
}

func (h *simHandler) name() string { return h.decl.Name }

// countFiles adds d to the preserved files of the handler's FLBs.
func (h *simHandler) countFiles(d int) {
	for _, f := range h.flbs {
		f.countFiles(d)
	}
}

func (h *simHandler) canPreserve(_ *luo.FileHandler, file any) bool {
	f, ok := file.(*simFile)
	return ok && f.handler == h.name()
}

func (h *simHandler) preserve(a *luo.FileOpArgs) error {
	if err := h.sys.faults.trip("file-preserve", h.name()); err != nil {
		return err
	}
	f := a.File.(*simFile)
	if h.decl.Memfd {
		return h.preserveMemfd(a, f)
	}
	pa, info, err := h.sys.payloads.write(f.payload())
	if err != nil {
		return err
	}
	a.SerializedData, a.PrivateData = pa, f
	f.saved(pa, info)
	return nil
}

// preserveMemfd saves the file as memfd_luo_preserve does: a
// memfd_luo_ser, its folios and their kho_vmalloc array, the data handle
// being the memfd_luo_ser.
func (h *simHandler) preserveMemfd(a *luo.FileOpArgs, f *simFile) error {
	spec, info := f.memfdSpec()
	w, err := h.sys.payloads.writeMemfd(spec)
	if err != nil {
		return err
	}
	info.Size, info.CRC = spec.Size, w.Checksum
	a.SerializedData, a.PrivateData = w.PA, f
	f.savedMemfd(w, info)
	return nil
}

func (h *simHandler) unpreserve(a *luo.FileOpArgs) {
	f, _ := a.PrivateData.(*simFile)
	if w := f.memfdWritten(); w != nil {
		h.sys.payloads.freeMemfd(w, h.name())
	} else {
		h.sys.payloads.free(a.SerializedData, "file of", h.name())
	}
	if f != nil && f.unpreserved() {
		h.countFiles(-1)
	}
	h.sys.chk.FileUnpreserved(h.name())
}

func (h *simHandler) retrieve(a *luo.FileOpArgs) error {
	if err := h.sys.faults.trip("file-retrieve", h.name()); err != nil {
		return err
	}
	want, ok := h.sys.handedFile(a.SerializedData)
	if !ok {
		return fmt.Errorf("file of %s with data %#x was not handed over by kho-sim: %w", h.name(), a.SerializedData, unix.EINVAL)
	}
	name := fileName(want.Session, want.Token)
	if h.decl.Memfd {
		return h.retrieveMemfd(a, want)
	}
	info, err := h.sys.payloads.read(a.SerializedData, payload.Info{Name: payloadName(name), Size: want.Size, Seed: want.Seed, CRC: want.CRC})
	if err != nil {
		h.sys.payloads.fail(fmt.Sprintf("file %s: %v", name, err))
		return fmt.Errorf("file %s: %v: %w", name, err, unix.EIO)
	}
	h.sys.payloads.setLive(a.SerializedData, payload.HeaderSize+info.Size)
	a.File = &retrieved{name: name, data: a.SerializedData, info: info}
	return nil
}

// retrieveMemfd reads the memfd-v2 state back strictly (memfd.Read, every
// block preserved with the right order) and compares it byte by byte with
// the content the scenario's shape and the handed-over seed give.
func (h *simHandler) retrieveMemfd(a *luo.FileOpArgs, want MetaFile) error {
	name := fileName(want.Session, want.Token)
	d := h.sys.sc.File(want.Session, want.Token)
	if d == nil {
		return fmt.Errorf("file %s: not declared by scenario %s: %w", name, h.sys.sc.Name, unix.EINVAL)
	}
	spec, err := MemfdSpec(want.Session, *d, 0)
	if err != nil {
		return err
	}
	spec.Seed = want.Seed
	f, err := h.sys.payloads.readMemfd(a.SerializedData, spec, want.CRC)
	if err != nil {
		h.sys.payloads.fail(fmt.Sprintf("file %s: %v", name, err))
		return fmt.Errorf("file %s: %v: %w", name, err, unix.EIO)
	}
	for _, b := range f.Blocks() {
		h.sys.payloads.setLive(b.PA, b.Size())
	}
	a.File = &retrieved{name: name, data: a.SerializedData, info: payload.Info{Name: payloadName(name), Size: f.Size(), Seed: want.Seed, CRC: f.Checksum}, memfd: f}
	return nil
}

func (h *simHandler) canFinish(*luo.FileOpArgs) bool {
	return h.sys.faults.trip("can-finish", h.name()) == nil
}

func (h *simHandler) finish(a *luo.FileOpArgs) {
	// The handler finishes before its FLBs (luo_file_finish_one), so the
	// checker learns of the file first.
	h.sys.chk.FileFinished(h.name())
	if r, ok := a.File.(*retrieved); ok && r.memfd != nil {
		for _, b := range r.memfd.Blocks() {
			h.sys.payloads.setLive(b.PA, 0)
		}
		return
	}
	h.sys.payloads.setLive(a.SerializedData, 0)
}

// simFile is one declared file in this boot, as the process holding it
// and its handler see it.
type simFile struct {
	handler string

	// mu guards the state below: the process and the handler's callbacks
	// both change it.
	mu        sync.Mutex
	preserved bool
	data      uint64
	info      payload.Info
	// memfd is the file's memfd-v2 content for a memfd handler, written
	// is its state once preserved.
	memfd   *memfd.Spec
	written *memfd.Written
}

// prepareMemfd sets the memfd the next preserve saves.
func (f *simFile) prepareMemfd(spec memfd.Spec, info payload.Info) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.memfd, f.info = &spec, info
}

func (f *simFile) memfdSpec() (memfd.Spec, payload.Info) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return *f.memfd, f.info
}

// savedMemfd records the memfd-v2 state the handler wrote.
func (f *simFile) savedMemfd(w *memfd.Written, info payload.Info) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.data, f.info, f.written = w.PA, info, w
}

// memfdWritten is the memfd-v2 state written for the file, nil for none
// (or a nil file).
func (f *simFile) memfdWritten() *memfd.Written {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.written
}

// prepare sets the payload the next preserve saves.
func (f *simFile) prepare(info payload.Info) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.info = info
}

func (f *simFile) payload() payload.Info {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.info
}

// saved records where the handler saved the payload.
func (f *simFile) saved(pa uint64, info payload.Info) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.data, f.info = pa, info
}

// markPreserved records that the file's preserve succeeded.
func (f *simFile) markPreserved() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.preserved = true
}

// unpreserved clears preserved and reports whether it was set.
func (f *simFile) unpreserved() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	was := f.preserved
	f.preserved = false
	return was
}

func (f *simFile) isPreserved() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.preserved
}

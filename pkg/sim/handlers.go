package sim

import (
	"fmt"
	"slices"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/pkg/luo"
	"github.com/kho-sim/kho-sim/pkg/payload"
	"github.com/kho-sim/kho-sim/pkg/scenario"
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
	pa, info, err := h.sys.payloads.write(f.payload())
	if err != nil {
		return err
	}
	a.SerializedData, a.PrivateData = pa, f
	f.saved(pa, info)
	return nil
}

func (h *simHandler) unpreserve(a *luo.FileOpArgs) {
	h.sys.payloads.free(a.SerializedData, "file of", h.name())
	if f, ok := a.PrivateData.(*simFile); ok && f.unpreserved() {
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
	name := fmt.Sprintf("%s/%d", want.Session, want.Token)
	info, err := h.sys.payloads.read(a.SerializedData, payload.Info{Name: payloadName(name), Size: want.Size, Seed: want.Seed, CRC: want.CRC})
	if err != nil {
		h.sys.payloads.fail(fmt.Sprintf("file %s: %v", name, err))
		return fmt.Errorf("file %s: %v: %w", name, err, unix.EIO)
	}
	h.sys.payloads.setLive(a.SerializedData, payload.HeaderSize+info.Size)
	a.File = &retrieved{name: name, data: a.SerializedData, info: info}
	return nil
}

func (h *simHandler) canFinish(*luo.FileOpArgs) bool {
	return h.sys.faults.trip("can-finish", h.name()) == nil
}

func (h *simHandler) finish(a *luo.FileOpArgs) {
	// The handler finishes before its FLBs (luo_file_finish_one), so the
	// checker learns of the file first.
	h.sys.chk.FileFinished(h.name())
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

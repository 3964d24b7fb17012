package flb

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// preserveOne models luo_flb_file_preserve_one: the first dependent file
// calls .preserve and keeps its data and obj; every file counts.
func (k *Kernel) preserveOne(f *FLB) error {
	f.outgoing.mu.Lock()
	defer f.outgoing.mu.Unlock()
	if f.outgoing.count == 0 {
		args := OpArgs{FLB: f}
		if err := f.Ops.Preserve(&args); err != nil {
			return fmt.Errorf("FLB %q preserve: %w", f.Compatible, err)
		}
		f.outgoing.data, f.outgoing.obj = args.Data, args.Obj
	}
	f.outgoing.count++
	return nil
}

// unpreserveOne models luo_flb_file_unpreserve_one: the last dependent file
// calls .unpreserve and clears data and obj.
func (k *Kernel) unpreserveOne(f *FLB) {
	f.outgoing.mu.Lock()
	defer f.outgoing.mu.Unlock()
	f.outgoing.count--
	if f.outgoing.count == 0 {
		args := OpArgs{FLB: f, Data: f.outgoing.data, Obj: f.outgoing.obj}
		if f.Ops.Unpreserve != nil {
			f.Ops.Unpreserve(&args)
		}
		f.outgoing.data, f.outgoing.obj = 0, nil
	}
}

// FilePreserve models luo_flb_file_preserve: called by luo_preserve_file
// before the file handler's .preserve. It walks h's FLBs in registration
// order; if one fails, those already done in this call are unpreserved in
// reverse order and the error is returned.
func (k *Kernel) FilePreserve(h *FileHandler) error {
	flbs := h.FLBs()
	for i, f := range flbs {
		if err := k.preserveOne(f); err != nil {
			for j := i - 1; j >= 0; j-- {
				k.unpreserveOne(flbs[j])
			}
			return err
		}
	}
	return nil
}

// FileUnpreserve models luo_flb_file_unpreserve: called when a preserved file
// is dropped before reboot (or its handler's .preserve failed). It walks h's
// FLBs in reverse registration order.
func (k *Kernel) FileUnpreserve(h *FileHandler) {
	flbs := h.FLBs()
	for i := len(flbs) - 1; i >= 0; i-- {
		k.unpreserveOne(flbs[i])
	}
}

// lookupIncoming models the table walk of luo_flb_retrieve_one: the first
// entry whose name strcmp-matches f's compatible. The header count is
// trusted as in 7.0; reads that would leave the page fail with
// ErrReadPastPage. Caller holds f.incoming.mu.
func (k *Kernel) lookupIncoming(f *FLB) (data uint64, count int64, err error) {
	k.pageMu.RLock()
	page := k.incoming
	k.pageMu.RUnlock()
	if page == nil {
		return 0, 0, fmt.Errorf("FLB %q: no incoming FLB data: %w", f.Compatible, unix.ENODATA)
	}
	_, n, err := ReadHeader(page)
	if err != nil {
		return 0, 0, fmt.Errorf("FLB %q: %v: %w", f.Compatible, err, ErrReadPastPage)
	}
	name, _ := parseCompatible(f.Compatible)
	for i := uint64(0); i < n; i++ {
		off := entryOffset(i)
		match, err := strcmpPage(page, off, name)
		if err != nil {
			return 0, 0, fmt.Errorf("FLB %q: entry %d of %d: %w", f.Compatible, i, n, err)
		}
		if !match {
			continue
		}
		if end := off + EntrySize; end > uint64(len(page)) {
			return 0, 0, fmt.Errorf("FLB %q: entry %d ends at byte %d: %w", f.Compatible, i, end, ErrReadPastPage)
		}
		e := page[off+NameLen:]
		return le64(e), int64(le64(e[8:])), nil
	}
	return 0, 0, fmt.Errorf("FLB %q: not in the incoming table: %w", f.Compatible, unix.ENOENT)
}

// retrieveOne models luo_flb_retrieve_one: ENODATA once finished or without
// incoming data, 0 if already retrieved, ENOENT if f is not in the table;
// otherwise it loads data and count, then calls .retrieve. As in 7.0, data
// and count stay loaded when .retrieve fails, and retrieved stays false.
// A NULL .retrieve (an FLB never registered, as registration refuses one)
// is called all the same: ErrOops, and incoming.lock is never released, so
// every later call on f is ErrDeadlock.
func (k *Kernel) retrieveOne(f *FLB) error {
	f.incoming.mu.Lock()
	defer f.incoming.mu.Unlock()
	if f.incoming.oopsed {
		return fmt.Errorf("FLB %q: retrieve: %w", f.Compatible, ErrDeadlock)
	}
	if f.incoming.finished {
		return fmt.Errorf("FLB %q: already finished: %w", f.Compatible, unix.ENODATA)
	}
	if f.incoming.retrieved {
		return nil
	}
	data, count, err := k.lookupIncoming(f)
	if err != nil {
		return err
	}
	f.incoming.data = data
	if !(k.opts.FixFinishBeforeRetrieve && f.incoming.loaded) {
		f.incoming.count = count
	}
	f.incoming.loaded = true
	if f.Ops == nil || f.Ops.Retrieve == nil {
		f.incoming.oopsed = true
		return fmt.Errorf("FLB %q: .retrieve is NULL: %w", f.Compatible, ErrOops)
	}
	args := OpArgs{FLB: f, Data: data}
	if err := f.Ops.Retrieve(&args); err != nil {
		return fmt.Errorf("FLB %q retrieve: %w", f.Compatible, err)
	}
	f.incoming.obj = args.Obj
	f.incoming.retrieved = true
	return nil
}

// finishOne models luo_flb_file_finish_one. In 7.0 the count was loaded only
// by retrieve, so without an earlier GetIncoming it goes 0 -> -1 (never 0
// again) and .finish never runs. With FixFinishBeforeRetrieve the first
// decrement loads the count from the page (WarnFixedFinishCount when it
// cannot). When the last file finishes an FLB not yet retrieved, a failed
// retrieve is WarnFinishRetrieve, ErrReadPastPage included, and .finish is
// skipped. It returns ErrOops or ErrDeadlock, which end the kernel's task;
// everything else the kernel only prints.
func (k *Kernel) finishOne(f *FLB) error {
	f.incoming.mu.Lock()
	if f.incoming.oopsed {
		f.incoming.mu.Unlock()
		return fmt.Errorf("FLB %q: finish: %w", f.Compatible, ErrDeadlock)
	}
	if k.opts.FixFinishBeforeRetrieve && !f.incoming.loaded && !f.incoming.finished {
		_, count, err := k.lookupIncoming(f)
		if err != nil {
			f.incoming.mu.Unlock()
			k.warn(WarnFixedFinishCount, f, fmt.Errorf("finish: count not decremented: %w", err))
			return nil
		}
		f.incoming.count, f.incoming.loaded = count, true
	}
	f.incoming.count--
	count, retrieved := f.incoming.count, f.incoming.retrieved
	f.incoming.mu.Unlock()
	if count != 0 {
		return nil
	}
	if !retrieved {
		if err := k.retrieveOne(f); err != nil {
			if errors.Is(err, ErrOops) || errors.Is(err, ErrDeadlock) {
				return err
			}
			k.warn(WarnFinishRetrieve, f, err)
			return nil
		}
	}
	f.incoming.mu.Lock()
	defer f.incoming.mu.Unlock()
	f.Ops.Finish(&OpArgs{FLB: f, Obj: f.incoming.obj})
	f.incoming.data, f.incoming.obj = 0, nil
	f.incoming.finished = true
	return nil
}

// FileFinish models luo_flb_file_finish: called by luo_file_finish after the
// handler's .finish, it walks h's FLBs in reverse registration order. The
// kernel returns void: its WARN_ONs go to Options.Warn as they fire and the
// walk goes on. The error is ErrOops or ErrDeadlock, where the kernel's task
// would die or hang; the walk stops there, as the task does.
func (k *Kernel) FileFinish(h *FileHandler) error {
	flbs := h.FLBs()
	for i := len(flbs) - 1; i >= 0; i-- {
		if err := k.finishOne(flbs[i]); err != nil {
			return err
		}
	}
	return nil
}

// GetIncoming models liveupdate_flb_get_incoming: it returns the object
// .retrieve rebuilt, calling .retrieve only while no object is cached.
// Errors: EOPNOTSUPP, ENODATA (no incoming data, or finished), ENOENT (not in
// the incoming table), ErrReadPastPage, or the .retrieve error. The kernel
// checks no op here: an FLB without .retrieve (never registered) gets the
// same ENODATA and ENOENT, and when its entry is found, ErrOops as the
// kernel calls the NULL .retrieve (see retrieveOne).
// Differs from 7.0: the kernel reads obj without the lock; the model locks.
func (k *Kernel) GetIncoming(f *FLB) (any, error) {
	if !k.Enabled() {
		return nil, fmt.Errorf("FLB %q get incoming: %w", f.Compatible, unix.EOPNOTSUPP)
	}
	f.incoming.mu.Lock()
	cached := f.incoming.obj != nil
	f.incoming.mu.Unlock()
	if !cached {
		if err := k.retrieveOne(f); err != nil {
			return nil, err
		}
	}
	f.incoming.mu.Lock()
	defer f.incoming.mu.Unlock()
	return f.incoming.obj, nil
}

// GetOutgoing models liveupdate_flb_get_outgoing: the object .preserve
// returned (nil before the first dependent file). Errors: EOPNOTSUPP.
func (k *Kernel) GetOutgoing(f *FLB) (any, error) {
	if !k.Enabled() {
		return nil, fmt.Errorf("FLB %q get outgoing: %w", f.Compatible, unix.EOPNOTSUPP)
	}
	f.outgoing.mu.Lock()
	defer f.outgoing.mu.Unlock()
	return f.outgoing.obj, nil
}

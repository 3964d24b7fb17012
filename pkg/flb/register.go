package flb

import (
	"fmt"
	"slices"

	"golang.org/x/sys/unix"
)

// RegisterFLB models liveupdate_register_flb: it links f to handler h and, on
// f's first link, adds f to the global list. Checks run in the kernel's order:
//
//   - EOPNOTSUPP: live update disabled;
//   - EINVAL after a WARN_ON: an op missing (WarnMissingOp), or h not
//     registered (WarnHandlerNotRegistered);
//   - EBUSY: sessions exist (Quiesce failed);
//   - EEXIST: f already linked to h;
//   - on f's first link: EINVAL after a WARN_ON when f has no users but is
//     still listed (WarnListedWithoutUsers), ENOSPC when Max FLBs are
//     registered, EEXIST when another FLB has the same compatible (strcmp),
//     EAGAIN when the owner module is going away.
//
// nil Ops is ErrOops: the kernel reads flb->ops->preserve through NULL.
// Differs from 7.0: a Compatible longer than 48 bytes and an FLB already
// owned by another Kernel return EINVAL (in C they do not compile, or
// cannot happen). The kernel's "not registered" test is
// list_empty(&fh->list), which is false for a zeroed, never-registered handler
// (NULL next: the kernel then oopses walking flb_list) and for one removed by
// list_del (poisoned); the model WARNs and returns the EINVAL the code
// intends.
// ENOMEM is not modelled.
func (k *Kernel) RegisterFLB(h *FileHandler, f *FLB) error {
	if !k.Enabled() {
		return fmt.Errorf("register FLB %q: %w", f.Compatible, unix.EOPNOTSUPP)
	}
	if f.Ops == nil {
		return fmt.Errorf("register FLB %q: ops is NULL: %w", f.Compatible, ErrOops)
	}
	if f.Ops.Preserve == nil || f.Ops.Unpreserve == nil || f.Ops.Retrieve == nil || f.Ops.Finish == nil {
		err := fmt.Errorf("register FLB %q: missing op: %w", f.Compatible, unix.EINVAL)
		k.warn(WarnMissingOp, f, err)
		return err
	}
	h.mu.RLock()
	registered := h.registered
	h.mu.RUnlock()
	if !registered {
		err := fmt.Errorf("register FLB %q: file handler not registered: %w", f.Compatible, unix.EINVAL)
		k.warn(WarnHandlerNotRegistered, f, err)
		return err
	}
	name, ok := parseCompatible(f.Compatible)
	if !ok {
		return fmt.Errorf("register FLB %q: compatible longer than %d bytes: %w", f.Compatible, NameLen, unix.EINVAL)
	}
	if !f.owner.CompareAndSwap(nil, k) && f.owner.Load() != k {
		return fmt.Errorf("register FLB %q: FLB belongs to another boot: %w", f.Compatible, unix.EINVAL)
	}
	return k.exclusive("register", h, f, func() error {
		if slices.Contains(h.flbs, f) {
			return fmt.Errorf("register FLB %q: already linked to this handler: %w", f.Compatible, unix.EEXIST)
		}
		if f.users == 0 {
			if f.listed {
				err := fmt.Errorf("register FLB %q: on the global list without users: %w", f.Compatible, unix.EINVAL)
				k.warn(WarnListedWithoutUsers, f, err)
				return err
			}
			if len(k.list) == Max {
				return fmt.Errorf("register FLB %q: %d FLBs registered: %w", f.Compatible, Max, unix.ENOSPC)
			}
			for _, g := range k.list {
				gname, _ := parseCompatible(g.Compatible)
				if gname.equal(name) {
					return fmt.Errorf("register FLB %q: compatible already registered: %w", f.Compatible, unix.EEXIST)
				}
			}
			if !f.Ops.Owner.TryGet() {
				return fmt.Errorf("register FLB %q: owner module going away: %w", f.Compatible, unix.EAGAIN)
			}
			k.list = append(k.list, f)
			f.listed = true
		}
		f.users++
		h.flbs = append(h.flbs, f)
		return nil
	})
}

// UnregisterFLB models liveupdate_unregister_flb: it unlinks f from h and, on
// the last link, removes f from the global list and puts its owner module.
// Errors: EOPNOTSUPP, EBUSY (sessions exist), ENOENT (f not linked to h).
func (k *Kernel) UnregisterFLB(h *FileHandler, f *FLB) error {
	if !k.Enabled() {
		return fmt.Errorf("unregister FLB %q: %w", f.Compatible, unix.EOPNOTSUPP)
	}
	return k.exclusive("unregister", h, f, func() error {
		i := slices.Index(h.flbs, f)
		if i < 0 {
			return fmt.Errorf("unregister FLB %q: not linked to this handler: %w", f.Compatible, unix.ENOENT)
		}
		h.flbs = slices.Delete(h.flbs, i, i+1)
		f.users--
		if f.users == 0 {
			k.list = slices.DeleteFunc(k.list, func(g *FLB) bool { return g == f })
			f.listed = false
			f.Ops.Owner.Put()
		}
		return nil
	})
}

// exclusive runs fn as liveupdate_register_flb and
// liveupdate_unregister_flb do their work: with no session in flight
// (luo_session_quiesce, else EBUSY), the registration lock and h's lock
// held.
func (k *Kernel) exclusive(op string, h *FileHandler, f *FLB, fn func() error) error {
	if !k.quiesce() {
		return fmt.Errorf("%s FLB %q: sessions exist: %w", op, f.Compatible, unix.EBUSY)
	}
	defer k.resume()
	k.regMu.Lock()
	defer k.regMu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	return fn()
}

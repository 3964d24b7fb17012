package luo

import (
	"fmt"
	"slices"

	"github.com/kho-sim/kho-sim/pkg/flb"
	"golang.org/x/sys/unix"
)

// FileOpArgs models struct liveupdate_file_op_args (7.0).
type FileOpArgs struct {
	Handler        *FileHandler
	Retrieved      bool   // can_finish, finish: whether the file was retrieved
	File           any    // retrieve: out; others: in (nil if not retrieved)
	SerializedData uint64 // preserve, freeze: out; others: in
	PrivateData    any    // preserve: out; unpreserve, freeze, unfreeze: in
}

// FileOps models struct liveupdate_file_ops (7.0). CanPreserve, Preserve,
// Unpreserve, Retrieve and Finish are required.
type FileOps struct {
	CanPreserve func(h *FileHandler, file any) bool
	Preserve    func(*FileOpArgs) error
	Unpreserve  func(*FileOpArgs)
	Freeze      func(*FileOpArgs) error
	Unfreeze    func(*FileOpArgs)
	Retrieve    func(*FileOpArgs) error
	CanFinish   func(*FileOpArgs) bool
	Finish      func(*FileOpArgs)
	Owner       *flb.Module
}

// FileHandler models struct liveupdate_file_handler. Compatible fits a
// char[48]: 48 bytes leave no NUL, as in C, and such a handler never matches
// a serialized file.
type FileHandler struct {
	Compatible string
	Ops        FileOps
	flb.FileHandler
}

// RegisterFileHandler models liveupdate_register_file_handler. Errors:
// EOPNOTSUPP, EINVAL (a required op missing; also a Compatible over 48 bytes,
// which would not compile), EBUSY (sessions exist), EEXIST (compatible taken,
// strcmp), EAGAIN (owner module going away).
func (c *Core) RegisterFileHandler(h *FileHandler) error {
	if !c.Enabled() {
		return fmt.Errorf("register file handler %q: %w", h.Compatible, unix.EOPNOTSUPP)
	}
	o := h.Ops
	if o.Preserve == nil || o.Unpreserve == nil || o.Retrieve == nil || o.Finish == nil || o.CanPreserve == nil {
		return fmt.Errorf("register file handler %q: missing op: %w", h.Compatible, unix.EINVAL)
	}
	name, terminated, ok := handlerCompat(h.Compatible)
	if !ok {
		return fmt.Errorf("register file handler %q: compatible longer than %d bytes: %w", h.Compatible, HandlerCompatLen, unix.EINVAL)
	}
	if !c.Quiesce() {
		return fmt.Errorf("register file handler %q: sessions exist: %w", h.Compatible, unix.EBUSY)
	}
	defer c.Resume()
	c.handlersMu.Lock()
	defer c.handlersMu.Unlock()
	for _, g := range c.handlers {
		gname, gterm, _ := handlerCompat(g.Compatible)
		if g == h || (terminated && gterm && gname == name) {
			return fmt.Errorf("register file handler %q: compatible already registered: %w", h.Compatible, unix.EEXIST)
		}
	}
	if !h.Ops.Owner.TryGet() {
		return fmt.Errorf("register file handler %q: owner module going away: %w", h.Compatible, unix.EAGAIN)
	}
	h.MarkRegistered()
	c.handlers = append(c.handlers, h)
	return nil
}

// UnregisterFileHandler models liveupdate_unregister_file_handler. Errors:
// EOPNOTSUPP, EBUSY (sessions exist, or FLBs still registered on h).
// Differs from 7.0: unregistering a handler that is not registered returns
// EINVAL; the kernel would list_del an unlinked node.
func (c *Core) UnregisterFileHandler(h *FileHandler) error {
	if !c.Enabled() {
		return fmt.Errorf("unregister file handler %q: %w", h.Compatible, unix.EOPNOTSUPP)
	}
	if !c.Quiesce() {
		return fmt.Errorf("unregister file handler %q: sessions exist: %w", h.Compatible, unix.EBUSY)
	}
	defer c.Resume()
	if len(h.FLBs()) > 0 {
		return fmt.Errorf("unregister file handler %q: FLBs registered: %w", h.Compatible, unix.EBUSY)
	}
	c.handlersMu.Lock()
	defer c.handlersMu.Unlock()
	i := slices.Index(c.handlers, h)
	if i < 0 {
		return fmt.Errorf("unregister file handler %q: not registered: %w", h.Compatible, unix.EINVAL)
	}
	c.handlers = slices.Delete(c.handlers, i, i+1)
	h.MarkUnregistered()
	h.Ops.Owner.Put()
	return nil
}

// RegisterFLB models liveupdate_register_flb(h, f); see flb.Kernel.RegisterFLB.
func (c *Core) RegisterFLB(h *FileHandler, f *flb.FLB) error {
	return c.flb.RegisterFLB(&h.FileHandler, f)
}

// UnregisterFLB models liveupdate_unregister_flb(h, f).
func (c *Core) UnregisterFLB(h *FileHandler, f *flb.FLB) error {
	return c.flb.UnregisterFLB(&h.FileHandler, f)
}

// handlerList returns the registered handlers in registration order.
func (c *Core) handlerList() []*FileHandler {
	c.handlersMu.RLock()
	defer c.handlersMu.RUnlock()
	return slices.Clone(c.handlers)
}

package flb

import (
	"sync"
	"sync/atomic"
)

// OpArgs models struct liveupdate_flb_op_args.
type OpArgs struct {
	FLB  *FLB
	Data uint64 // preserve: out; unpreserve, retrieve: in
	Obj  any    // preserve, retrieve: out; unpreserve, finish: in
}

// Ops models struct liveupdate_flb_ops. All four callbacks are required
// (liveupdate_register_flb refuses an FLB without one).
// Returned errors should be unix.Errno values (possibly wrapped), as the
// kernel's callbacks return negative errnos.
type Ops struct {
	Preserve   func(*OpArgs) error
	Unpreserve func(*OpArgs)
	Retrieve   func(*OpArgs) error
	Finish     func(*OpArgs)
	Owner      *Module
}

// FLB models struct liveupdate_flb: the public template plus the private
// state (struct luo_flb_private) the kernel keeps inside it.
//
// Differs from 7.0: the kernel initialises the private state lazily, without
// a lock, on first use (luo_flb_get_private); here the zero value is ready,
// which is the 7.1 behaviour and keeps the race detector quiet. An FLB
// belongs to the first Kernel it is registered with: make new FLB values for
// each simulated boot.
type FLB struct {
	Compatible string
	Ops        *Ops

	owner atomic.Pointer[Kernel]

	// Guarded by Kernel.regMu (the kernel relies on session quiesce).
	users  int
	listed bool // on luo_flb_global.list

	outgoing struct {
		mu    sync.Mutex
		count int64
		data  uint64
		obj   any
	}
	incoming struct {
		mu        sync.Mutex
		count     int64
		loaded    bool // count read from the page (FixFinishBeforeRetrieve)
		data      uint64
		obj       any
		retrieved bool
		finished  bool
		// oopsed: the kernel's task died in a NULL .retrieve holding
		// incoming.lock, which no one releases.
		oopsed bool
	}
}

// State is a snapshot of an FLB's private state, for checks and reports.
type State struct {
	Users         int
	Registered    bool
	OutgoingCount int64
	OutgoingData  uint64
	OutgoingObj   any
	IncomingCount int64
	IncomingData  uint64
	IncomingObj   any
	Retrieved     bool
	Finished      bool
}

// FileHandler is the part of struct liveupdate_file_handler that luo_flb.c
// touches: the private flb_list and the handler's own list node, whose
// emptiness tells liveupdate_register_flb whether the handler is registered.
// pkg/luo embeds it in its file handler.
type FileHandler struct {
	mu         sync.RWMutex
	registered bool
	flbs       []*FLB
}

// MarkRegistered models what liveupdate_register_file_handler does to the
// private fields: INIT_LIST_HEAD(flb_list) and adding the handler's node.
func (h *FileHandler) MarkRegistered() {
	h.mu.Lock()
	h.registered = true
	h.flbs = nil
	h.mu.Unlock()
}

// MarkUnregistered models list_del of the handler's node.
func (h *FileHandler) MarkUnregistered() {
	h.mu.Lock()
	h.registered = false
	h.mu.Unlock()
}

// FLBs returns the FLBs linked to the handler, in registration order.
func (h *FileHandler) FLBs() []*FLB {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return append([]*FLB(nil), h.flbs...)
}

// Quiescer is the session layer as luo_flb.c sees it: luo_session_quiesce
// and luo_session_resume. Quiesce returns false, holding nothing, when
// sessions exist; after true the caller must call Resume.
type Quiescer interface {
	Quiesce() bool
	Resume()
}

// Options configure one simulated boot.
type Options struct {
	// Disabled models liveupdate_enabled() == false: EOPNOTSUPP.
	Disabled bool
	// FixFinishBeforeRetrieve loads the incoming count from the page before
	// the first finish decrement, and retrieve then keeps it.
	FixFinishBeforeRetrieve bool
	// Quiescer is the session layer; nil means always quiescent.
	Quiescer Quiescer
	// Warn, when set, is called for each WARN_ON at the moment the kernel
	// prints it, before the function that hit it returns, possibly from
	// several goroutines at once and with the Kernel's locks held: it must
	// not call back into the Kernel.
	Warn func(Warning)
}

// Kernel models struct luo_flb_global for one boot.
type Kernel struct {
	opts     Options
	disabled atomic.Bool // liveupdate_enabled() == false
	warns    atomic.Int64

	// regMu guards list and count and each FLB's users/listed. The kernel
	// relies on luo_session_quiesce alone; a Go lock is needed besides, as
	// a nil Quiescer holds nothing and Serialize takes no quiesce.
	regMu sync.Mutex
	list  []*FLB

	pageMu   sync.RWMutex
	outgoing []byte // outgoing FLB page; nil until SetupOutgoing (active)
	incoming []byte // incoming FLB page; nil until SetupIncoming (active)
}

// New returns the FLB state of a freshly booted kernel.
func New(opts Options) *Kernel {
	k := &Kernel{opts: opts}
	k.disabled.Store(opts.Disabled)
	return k
}

// Enabled models liveupdate_enabled().
func (k *Kernel) Enabled() bool { return !k.disabled.Load() }

// Disable models luo_global.enabled = false, which LUO sets when its own
// initialisation fails; from then on the FLB API returns EOPNOTSUPP.
func (k *Kernel) Disable() { k.disabled.Store(true) }

// Registered returns the globally registered FLBs in registration order.
func (k *Kernel) Registered() []*FLB {
	k.regMu.Lock()
	defer k.regMu.Unlock()
	return append([]*FLB(nil), k.list...)
}

// State returns a snapshot of f's private state.
func (f *FLB) State() State {
	var s State
	f.outgoing.mu.Lock()
	s.OutgoingCount, s.OutgoingData, s.OutgoingObj = f.outgoing.count, f.outgoing.data, f.outgoing.obj
	f.outgoing.mu.Unlock()
	f.incoming.mu.Lock()
	s.IncomingCount, s.IncomingData, s.IncomingObj = f.incoming.count, f.incoming.data, f.incoming.obj
	s.Retrieved, s.Finished = f.incoming.retrieved, f.incoming.finished
	f.incoming.mu.Unlock()
	if k := f.owner.Load(); k != nil {
		k.regMu.Lock()
		s.Users, s.Registered = f.users, f.listed
		k.regMu.Unlock()
	}
	return s
}

func (k *Kernel) quiesce() bool {
	if k.opts.Quiescer == nil {
		return true
	}
	return k.opts.Quiescer.Quiesce()
}

func (k *Kernel) resume() {
	if k.opts.Quiescer != nil {
		k.opts.Quiescer.Resume()
	}
}

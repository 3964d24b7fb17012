package luo

import (
	"errors"
	"fmt"
	"sync"

	"github.com/kho-sim/kho-sim/pkg/flb"
	"github.com/kho-sim/kho-sim/pkg/kernel"
)

// Memory is what LUO needs from KHO.
type Memory interface {
	// AllocPreserve models kho_alloc_preserve: zeroed memory, listed in the
	// preserved-memory map handed to the next kernel.
	AllocPreserve(size uint64) (pa uint64, mem []byte, err error)
	// UnpreserveFree models kho_unpreserve_free.
	UnpreserveFree(pa uint64) error
	// Map models phys_to_virt of memory the previous kernel preserved; it
	// fails if [pa, pa+size) was not preserved.
	Map(pa, size uint64) ([]byte, error)
}

// Options configure one simulated boot.
type Options struct {
	// FLB configures the FLB layer. Disabled is liveupdate_enabled() ==
	// false for all of LUO; Quiescer is ignored: the Core is the quiescer.
	// Each WARN_ON goes to Core.Warnings, then to Warn if set.
	FLB flb.Options
	// PropagateFileDeserializeErrors applies upstream commit 307e0c58
	// ("liveupdate: propagate file deserialization failures", backported to
	// 6.19-stable in April 2026). Without it, as at cab056f2, a file whose
	// compatible matches no handler stops that session's file restore
	// silently and the session is still restored.
	PropagateFileDeserializeErrors bool
	// Generation is the handover generation this kernel writes and expects to
	// read: kernel.V70 (the default, Linux 7.0), kernel.LUOv2 or kernel.V72 (Linux
	// 7.2). Only the image layer differs; sessions, files and FLBs behave
	// as 7.0's, except that kernel.V72 lifts 7.0's session and file limits
	// (its blocks are linked) and always propagates file deserialization
	// errors, as 7.2 does.
	Generation kernel.Generation
	// ReadGeneration, when set, is the generation the incoming side reads
	// instead of Generation, to model a hop between kernel generations.
	ReadGeneration kernel.Generation
}

// BootError reports incoming state the kernel cannot handle: Err says what
// is wrong (an errno where the kernel returns one), KernelAction what the
// kernel of Generation ("" is 7.0) does about it: kernel.PanicsAtBoot,
// kernel.ReadsPastBlock or kernel.ReadsUnpreserved.
type BootError struct {
	Err          error
	KernelAction kernel.Action
	Generation   kernel.Generation
}

func (e *BootError) Error() string {
	return fmt.Sprintf("%v; %s", e.Err, e.Generation.Does(e.KernelAction))
}

func (e *BootError) Unwrap() error { return e.Err }

// bootError names the reading kernel's generation in a BootError err
// holds, and returns err.
func (c *Core) bootError(err error) error {
	var be *BootError
	if errors.As(err, &be) && be.Generation == "" {
		be.Generation = c.readFormat
	}
	return err
}

// sessionList models struct luo_session_header: one list of sessions and
// its serialization block.
type sessionList struct {
	rw       sync.RWMutex
	sessions []*Session
	block    []byte // luo_session_header_ser followed by the luo_session_ser array
	active   bool
	// kernel.V72: out marks the outgoing list, whose blocks grow and shrink
	// with its sessions through mem; the incoming list's blocks are the
	// restored chain.
	out    bool
	blocks *blockSet
	mem    Memory
}

// Core is LUO in one simulated boot: luo_global, luo_session_global,
// luo_file_handler_list and the FLB state.
type Core struct {
	mem        Memory
	opts       Options
	format     kernel.Generation // written
	readFormat kernel.Generation // read
	flb        *flb.Kernel

	// handlersMu guards handlers; the kernel relies on session quiesce.
	handlersMu sync.RWMutex
	handlers   []*FileHandler

	outgoing, incoming sessionList

	mu            sync.Mutex // guards the fields below
	liveupdateNum uint64     // incoming number; 0 on a cold boot
	fdtOutPA      uint64
	fdtOutSet     bool
	ser           []byte // outgoing struct luo_ser (kernel.LUOv2, kernel.V72)
	warnings      []error

	openMu        sync.Mutex // guards the deserialization result
	deserialized  bool
	deserializeEr error
}

// New returns LUO for a freshly booted kernel.
func New(mem Memory, opts Options) *Core {
	c := &Core{mem: mem, opts: opts, format: opts.Generation, readFormat: opts.ReadGeneration}
	if c.format == "" {
		c.format = kernel.V70
	}
	if c.readFormat == "" {
		c.readFormat = c.format
	}
	c.outgoing.out, c.outgoing.mem = true, mem
	if c.format == kernel.V72 {
		c.outgoing.blocks = newBlockSet(SessionEntrySize)
	}
	if c.readFormat == kernel.V72 {
		c.opts.PropagateFileDeserializeErrors = true
	}
	fo := opts.FLB
	fo.Quiescer = c
	fo.Warn = func(w flb.Warning) {
		c.warn(w)
		if opts.FLB.Warn != nil {
			opts.FLB.Warn(w)
		}
	}
	c.flb = flb.New(fo)
	return c
}

// Generation is the handover generation this Core writes.
func (c *Core) Generation() kernel.Generation { return c.format }

// ReadGeneration is the handover generation this Core reads.
func (c *Core) ReadGeneration() kernel.Generation { return c.readFormat }

// FLB returns the FLB layer of this boot.
func (c *Core) FLB() *flb.Kernel { return c.flb }

// Enabled models liveupdate_enabled().
func (c *Core) Enabled() bool { return c.flb.Enabled() }

// LiveupdateNumber returns the number read from the previous kernel (0 on a
// cold boot) and the one this kernel hands over (incoming + 1).
func (c *Core) LiveupdateNumber() (incoming, outgoing uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.liveupdateNum, c.liveupdateNum + 1
}

// Warnings returns what the kernel would have logged with WARN_ON or
// pr_warn, in order: failures it does not report to any caller. The
// WARN_ONs of luo_flb.c are flb.Warning values, added as they fire.
func (c *Core) Warnings() []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]error(nil), c.warnings...)
}

// WarnCount returns how many WARN_ONs of luo_flb.c fired in this boot.
func (c *Core) WarnCount() int { return c.flb.WarnCount() }

func (c *Core) warn(err error) {
	if err == nil {
		return
	}
	c.mu.Lock()
	c.warnings = append(c.warnings, err)
	c.mu.Unlock()
}

// Quiesce models luo_session_quiesce: it write-locks both session lists and
// succeeds only if neither holds a session (incoming sessions count until
// they are retrieved and closed). On false nothing stays locked.
func (c *Core) Quiesce() bool {
	c.incoming.rw.Lock()
	c.outgoing.rw.Lock()
	if len(c.incoming.sessions) > 0 || len(c.outgoing.sessions) > 0 {
		c.outgoing.rw.Unlock()
		c.incoming.rw.Unlock()
		return false
	}
	return true
}

// Resume models luo_session_resume.
func (c *Core) Resume() {
	c.outgoing.rw.Unlock()
	c.incoming.rw.Unlock()
}

// errDisabled is returned where userspace would find no /dev/liveupdate.
var errDisabled = errors.New("live update disabled: no /dev/liveupdate")

package luo

import (
	"errors"
	"fmt"
	"strings"

	"github.com/kho-sim/kho-sim/pkg/fdt"
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"golang.org/x/sys/unix"
)

// SetupOutgoing models luo_fdt_setup (luo_late_startup): it allocates the
// LUO FDT page, then, inside luo_session_setup_outgoing and
// luo_flb_setup_outgoing, the session block (16 pages) and the FLB page, and
// builds the FDT in the kernel's order: root compatible, liveupdate-number
// (incoming + 1, 1 on a cold boot), luo-session, luo-flb. It returns the LUO
// FDT's physical address, which KHO publishes as the "LUO" subtree. On
// failure LUO is disabled, and as in 7.0 only the FDT page is freed.
// Errors: EOPNOTSUPP when live update is disabled (the kernel then builds
// nothing), EALREADY on a second call, allocation and FDT errors.
//
// kernel.LUOv2 returns the "luo-v2" FDT whose luo-abi-header points at
// struct luo_ser; kernel.V72 returns struct luo_ser itself, a SerSize-byte
// blob that KHO publishes with kho_add_subtree(name, blob, size).
func (c *Core) SetupOutgoing() (uint64, error) {
	if !c.Enabled() {
		return 0, fmt.Errorf("LUO setup outgoing: %w", unix.EOPNOTSUPP)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fdtOutSet {
		return 0, fmt.Errorf("LUO setup outgoing: %w", unix.EALREADY)
	}
	var pa uint64
	var err error
	switch c.format {
	case kernel.LUOv2:
		pa, err = c.setupOutgoingV2()
	case kernel.V72:
		pa, err = c.setupOutgoingV5()
	default:
		pa, err = c.fdtSetup()
	}
	if err != nil {
		c.flb.Disable()
		return 0, fmt.Errorf("LUO setup outgoing: %w", err)
	}
	c.fdtOutPA, c.fdtOutSet = pa, true
	return pa, nil
}

// fdtSetup follows luo_fdt_setup, which ORs the errors of every step and
// runs them all before checking.
func (c *Core) fdtSetup() (uint64, error) {
	fdtPA, fdtMem, err := c.mem.AllocPreserve(FDTSize)
	if err != nil {
		return 0, fmt.Errorf("allocate FDT: %w", err)
	}
	b := fdt.NewBuilder(FDTSize)
	var errs []error
	add := func(err error) { errs = append(errs, err) }
	add(b.BeginNode(""))
	add(b.PropertyString("compatible", FDTCompatible))
	add(b.PropertyU64(FDTLiveupdateNum, c.liveupdateNum+1))
	add(c.sessionSetupOutgoing(b))
	add(c.flbSetupOutgoing(b))
	add(b.EndNode())
	blob, err := b.Finish()
	add(err)
	if err := errors.Join(errs...); err != nil {
		if ferr := c.mem.UnpreserveFree(fdtPA); ferr != nil {
			err = errors.Join(err, ferr)
		}
		return 0, err
	}
	if len(blob) > len(fdtMem) {
		return 0, fmt.Errorf("FDT of %d bytes in a %d-byte page: %w", len(blob), len(fdtMem), unix.ENOSPC)
	}
	copy(fdtMem, blob)
	return fdtPA, nil
}

// sessionSetupOutgoing models luo_session_setup_outgoing.
func (c *Core) sessionSetupOutgoing(b *fdt.Builder) error {
	block, err := c.nodeBlock(b, SessionBlockSize, "session block", FDTSessionNode, FDTSessionCompatible, FDTSessionHeader)
	if err != nil {
		return err
	}
	c.outgoing.rw.Lock()
	c.outgoing.block, c.outgoing.active = block, true
	c.outgoing.rw.Unlock()
	return nil
}

// flbSetupOutgoing models luo_flb_setup_outgoing.
func (c *Core) flbSetupOutgoing(b *fdt.Builder) error {
	page, err := c.nodeBlock(b, FLBPageSize, "FLB page", FDTFLBNode, FDTFLBCompatible, FDTFLBHeader)
	if err != nil {
		return err
	}
	return c.flb.SetupOutgoing(page)
}

// nodeBlock allocates and preserves a block of size bytes and adds the
// LUO FDT node that points at it (compatible and header address), as the
// session and FLB setups do; on failure the block is freed again.
func (c *Core) nodeBlock(b *fdt.Builder, size uint64, what, node, compat, header string) ([]byte, error) {
	pa, mem, err := c.mem.AllocPreserve(size)
	if err != nil {
		return nil, fmt.Errorf("allocate %s: %w", what, err)
	}
	if err := errors.Join(b.BeginNode(node),
		b.PropertyString("compatible", compat),
		b.PropertyU64(header, pa),
		b.EndNode()); err != nil {
		return nil, errors.Join(err, c.mem.UnpreserveFree(pa))
	}
	return mem, nil
}

// subnode models fdt_subnode_offset: a name without a unit address also
// matches "name@unit".
func subnode(n *fdt.Node, name string) *fdt.Node {
	for _, ch := range n.Children {
		if ch.Name == name || strings.HasPrefix(ch.Name, name+"@") {
			return ch
		}
	}
	return nil
}

// headerPA reads a node's u64 header property: exactly 8 bytes.
func headerPA(n *fdt.Node, prop string) (uint64, error) {
	v, ok := n.Prop(prop)
	if !ok || len(v) != 8 {
		return 0, fmt.Errorf("property %q missing or not 8 bytes: %w", prop, unix.EINVAL)
	}
	return le.Uint64(v), nil
}

// incomingNode models luo_session_setup_incoming's and
// luo_flb_setup_incoming's look at their node: present (missing is the
// errno 7.0 returns without it), compatible, an 8-byte header address;
// each failure is a panic at boot.
func incomingNode(root *fdt.Node, name, compat, header string, missing unix.Errno) (uint64, error) {
	n := subnode(root, name)
	if n == nil {
		return 0, panicErr("no %q node: %w", name, missing)
	}
	if !n.IsCompatible(compat) {
		return 0, panicErr("%q node not compatible with %q: %w", name, compat, unix.EINVAL)
	}
	pa, err := headerPA(n, header)
	if err != nil {
		return 0, panicErr("%q node: %w", name, err)
	}
	return pa, nil
}

func panicErr(format string, a ...any) error {
	return &BootError{Err: fmt.Errorf(format, a...), KernelAction: kernel.PanicsAtBoot}
}

// SetupIncoming models luo_early_startup once KHO has found the "LUO"
// subtree: luoFDT is that FDT. It checks what 7.0 checks (root compatible,
// an 8-byte liveupdate-number, then luo_session_setup_incoming and
// luo_flb_setup_incoming: node, compatible, 8-byte header address), each
// failure being a *BootError with kernel.PanicsAtBoot, as liveupdate_early_init
// panics. Beyond 7.0 it parses the FDT strictly and maps the session block
// and the FLB page through Memory.Map; a block the previous kernel did not
// preserve is a *BootError with kernel.ReadsUnpreserved. Nothing else is
// read until Open. On any error LUO is disabled.
//
// The Core reads the generation it was made for (Options.ReadGeneration, else
// Options.Generation): kernel.LUOv2 wants the
// "luo-v2" FDT, kernel.V72 the raw struct luo_ser blob (the child's
// blob-size bytes) with compatible "luo-v5" and, if sessions_pa is set, a
// session block chain kho_block_set_restore accepts. A handover of another
// generation fails these checks exactly as the kernel's would: a panic.
//
// It does not consume Decode's Handover, though both walk chains with
// followChain and read entries with the same helpers: Decode reads a whole
// kho.Incoming eagerly, goes on past every problem, is stricter than the
// kernel for 7.2 and gives no errno, while the kernel (and this model)
// stops at its first failure with that failure's errno, checks only what
// it checks, and reads the sessions' entries and file blocks at the first
// Open against the handlers registered by then, the FLB entries at their
// first get_incoming, aliasing the preserved memory it reads.
func (c *Core) SetupIncoming(luoFDT []byte) error {
	var err error
	switch c.readFormat {
	case kernel.LUOv2:
		err = c.setupIncomingV2(luoFDT)
	case kernel.V72:
		err = c.setupIncomingV5(luoFDT)
	default:
		err = c.setupIncoming(luoFDT)
	}
	if err != nil {
		c.flb.Disable()
		return fmt.Errorf("LUO setup incoming: %w", c.bootError(err))
	}
	return nil
}

func (c *Core) setupIncoming(blob []byte) error {
	tree, err := fdt.Parse(blob)
	if err != nil {
		return panicErr("LUO FDT: %w: %w", err, unix.EINVAL)
	}
	root := tree.Root
	if !root.IsCompatible(FDTCompatible) {
		return panicErr("LUO FDT not compatible with %q: %w", FDTCompatible, unix.EINVAL)
	}
	num, err := headerPA(root, FDTLiveupdateNum)
	if err != nil {
		return panicErr("LUO FDT: %w", err)
	}

	sessPA, err := incomingNode(root, FDTSessionNode, FDTSessionCompatible, FDTSessionHeader, unix.EINVAL)
	if err != nil {
		return err
	}
	flbPA, err := incomingNode(root, FDTFLBNode, FDTFLBCompatible, FDTFLBHeader, unix.ENOENT)
	if err != nil {
		return err
	}

	sessBlock, err := c.mem.Map(sessPA, SessionBlockSize)
	if err != nil {
		return &BootError{Err: fmt.Errorf("session block at %#x: %w", sessPA, err), KernelAction: kernel.ReadsUnpreserved}
	}
	flbPage, err := c.mem.Map(flbPA, FLBPageSize)
	if err != nil {
		return &BootError{Err: fmt.Errorf("FLB page at %#x: %w", flbPA, err), KernelAction: kernel.ReadsUnpreserved}
	}
	if len(sessBlock) < SessionBlockSize || len(flbPage) < FLBPageSize {
		return &BootError{Err: fmt.Errorf("mapped blocks too short: %w", unix.EFAULT), KernelAction: kernel.ReadsUnpreserved}
	}
	if err := c.flb.SetupIncoming(flbPage); err != nil {
		return err
	}
	c.mu.Lock()
	c.liveupdateNum = num
	c.mu.Unlock()
	c.incoming.rw.Lock()
	c.incoming.block, c.incoming.active = sessBlock[:SessionBlockSize], true
	c.incoming.rw.Unlock()
	return nil
}

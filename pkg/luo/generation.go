package luo

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/pkg/fdt"
	"github.com/kho-sim/kho-sim/pkg/kernel"
)

// Offsets of the fields of struct luo_ser.
func serNumOff(f kernel.Generation) int {
	if f == kernel.V72 {
		return SerCompatLen
	}
	return 0
}

func serSessionsOff(f kernel.Generation) int { return serNumOff(f) + 8 }

// SerField is the offset in struct luo_ser of generation g of its i-th u64
// field: liveupdate_num, sessions_pa, flbs_pa.
func SerField(g kernel.Generation, i int) int { return serNumOff(g) + 8*i }
func serFLBsOff(f kernel.Generation) int      { return serNumOff(f) + 16 }

// Ser is struct luo_ser as read back: the generation's compatible (empty
// for luo-v2, whose compatible is in the FDT), the liveupdate number and
// the addresses of the first session block and of the FLB page.
type Ser struct {
	Compatible    string
	LiveupdateNum uint64
	SessionsPA    uint64
	FLBsPA        uint64
}

// ParseSer decodes struct luo_ser of the given format from b, which must
// hold at least the struct (SerV2Size or SerSize bytes). It checks nothing
// else; the kernel's checks are the callers'.
func ParseSer(f kernel.Generation, b []byte) (Ser, error) {
	var s Ser
	size := SerV2Size
	if f == kernel.V72 {
		size = SerSize
	}
	if len(b) < size {
		return s, fmt.Errorf("struct luo_ser of %d bytes, want %d: %w", len(b), size, unix.EINVAL)
	}
	if f == kernel.V72 {
		s.Compatible = cstring(b[:SerCompatLen])
	}
	s.LiveupdateNum = le.Uint64(b[serNumOff(f):])
	s.SessionsPA = le.Uint64(b[serSessionsOff(f):])
	s.FLBsPA = le.Uint64(b[serFLBsOff(f):])
	return s, nil
}

// setupOutgoingV2 models luo_fdt_setup of the luo-v2 step: the LUO FDT
// page, then struct luo_ser in its own preserved block, the FDT (compatible
// "luo-v2", luo-abi-header), the 7.0 session block and the FLB page, whose
// addresses go into luo_ser, and finally the liveupdate number.
func (c *Core) setupOutgoingV2() (uint64, error) {
	fdtPA, fdtMem, err := c.mem.AllocPreserve(FDTSize)
	if err != nil {
		return 0, fmt.Errorf("allocate FDT: %w", err)
	}
	serPA, ser, err := c.mem.AllocPreserve(SerV2Size)
	if err != nil {
		return 0, errors.Join(fmt.Errorf("allocate luo_ser: %w", err), c.mem.UnpreserveFree(fdtPA))
	}
	fail := func(err error) (uint64, error) {
		return 0, errors.Join(err, c.mem.UnpreserveFree(serPA), c.mem.UnpreserveFree(fdtPA))
	}
	b := fdt.NewBuilder(FDTSize)
	_ = b.BeginNode("")
	_ = b.PropertyString("compatible", FDTCompatibleV2)
	_ = b.PropertyU64(FDTABIHeader, serPA)
	_ = b.EndNode()
	blob, err := b.Finish() // errors are sticky: Finish reports the first
	if err == nil && len(blob) > len(fdtMem) {
		err = fmt.Errorf("FDT of %d bytes in a %d-byte page: %w", len(blob), len(fdtMem), unix.ENOSPC)
	}
	if err != nil {
		return fail(err)
	}
	copy(fdtMem, blob)
	sessPA, block, err := c.mem.AllocPreserve(SessionBlockSize)
	if err != nil {
		return fail(fmt.Errorf("allocate session block: %w", err))
	}
	c.outgoing.rw.Lock()
	c.outgoing.block, c.outgoing.active = block, true
	c.outgoing.rw.Unlock()
	le.PutUint64(ser[serSessionsOff(kernel.LUOv2):], sessPA)
	if err := c.finishSer(kernel.LUOv2, ser); err != nil {
		return fail(err)
	}
	return fdtPA, nil
}

// setupOutgoingV5 models 7.2's luo_state_setup: struct luo_ser in a
// preserved block with compatible "luo-v5" and the liveupdate number,
// sessions set up without memory (sessions_pa stays 0 until reboot), then
// the FLB page. It returns luo_ser's address, the "LUO" blob of SerSize
// bytes.
func (c *Core) setupOutgoingV5() (uint64, error) {
	serPA, ser, err := c.mem.AllocPreserve(SerSize)
	if err != nil {
		return 0, fmt.Errorf("allocate luo_ser: %w", err)
	}
	strscpy(ser[:SerCompatLen], SerCompatible)
	c.outgoing.rw.Lock()
	c.outgoing.active = true
	c.outgoing.rw.Unlock()
	if err := c.finishSer(kernel.V72, ser); err != nil {
		return 0, errors.Join(err, c.mem.UnpreserveFree(serPA))
	}
	return serPA, nil
}

// finishSer completes an outgoing struct luo_ser of generation g: the FLB
// page (luo_flb_setup_outgoing) and the liveupdate number, incoming + 1;
// reboot fills in sessions_pa.
func (c *Core) finishSer(g kernel.Generation, ser []byte) error {
	flbPA, err := c.flbSetupOutgoingRaw()
	if err != nil {
		return err
	}
	le.PutUint64(ser[serFLBsOff(g):], flbPA)
	le.PutUint64(ser[serNumOff(g):], c.liveupdateNum+1)
	c.ser = ser
	return nil
}

// flbSetupOutgoingRaw models luo_flb_setup_outgoing(u64 *flbs_pa).
func (c *Core) flbSetupOutgoingRaw() (uint64, error) {
	pa, page, err := c.mem.AllocPreserve(FLBPageSize)
	if err != nil {
		return 0, fmt.Errorf("allocate FLB page: %w", err)
	}
	if err := c.flb.SetupOutgoing(page); err != nil {
		return 0, errors.Join(err, c.mem.UnpreserveFree(pa))
	}
	return pa, nil
}

// setupIncomingV2 models luo_early_startup of the luo-v2 step: the FDT's
// compatible and an 8-byte luo-abi-header (EINVAL, a panic, otherwise),
// then luo_ser's fields; a zero sessions_pa or flbs_pa means none.
func (c *Core) setupIncomingV2(blob []byte) error {
	tree, err := fdt.Parse(blob)
	if err != nil {
		return panicErr("LUO FDT: %w: %w", err, unix.EINVAL)
	}
	if !tree.Root.IsCompatible(FDTCompatibleV2) {
		return panicErr("LUO FDT not compatible with %q: %w", FDTCompatibleV2, unix.EINVAL)
	}
	serPA, err := headerPA(tree.Root, FDTABIHeader)
	if err != nil {
		return panicErr("LUO FDT: unable to get ABI header: %w", err)
	}
	raw, err := c.mem.Map(serPA, SerV2Size)
	if err != nil {
		return &BootError{Err: fmt.Errorf("luo_ser at %#x: %w", serPA, err), KernelAction: kernel.ReadsUnpreserved}
	}
	ser, err := ParseSer(kernel.LUOv2, raw)
	if err != nil {
		return &BootError{Err: fmt.Errorf("luo_ser at %#x: %w", serPA, err), KernelAction: kernel.ReadsUnpreserved}
	}
	var block []byte
	if ser.SessionsPA != 0 {
		if block, err = c.mapFull(ser.SessionsPA, SessionBlockSize, "session block"); err != nil {
			return err
		}
	}
	return c.finishIncoming(ser, block, nil)
}

// setupIncomingV5 models 7.2's luo_early_startup: a blob shorter than
// struct luo_ser or whose compatible (strncmp over 8 bytes) is not
// "luo-v5" is EINVAL, and so is a session block chain that
// kho_block_set_restore refuses; liveupdate_early_init panics on each.
func (c *Core) setupIncomingV5(blob []byte) error {
	if len(blob) < SerSize {
		return panicErr("LUO state is too small (%d < %d): %w", len(blob), SerSize, unix.EINVAL)
	}
	ser, _ := ParseSer(kernel.V72, blob) // long enough: checked above
	if ser.Compatible != SerCompatible {
		return panicErr("LUO state %q is incompatible with %q: %w", ser.Compatible, SerCompatible, unix.EINVAL)
	}
	var sessions *blockSet
	if ser.SessionsPA != 0 {
		bs, err := restoreBlockSet(c.mem, SessionEntrySize, ser.SessionsPA)
		var refused *BootError
		if errors.As(err, &refused) {
			return err
		}
		if err != nil {
			return panicErr("session blocks: %w", err)
		}
		sessions = bs
	}
	return c.finishIncoming(ser, nil, sessions)
}

// finishIncoming maps the FLB page, if any, and publishes what was read.
func (c *Core) finishIncoming(ser Ser, block []byte, sessions *blockSet) error {
	if ser.FLBsPA != 0 {
		page, err := c.mapFull(ser.FLBsPA, FLBPageSize, "FLB page")
		if err != nil {
			return err
		}
		if err := c.flb.SetupIncoming(page); err != nil {
			return err
		}
	}
	c.mu.Lock()
	c.liveupdateNum = ser.LiveupdateNum
	c.mu.Unlock()
	c.incoming.rw.Lock()
	c.incoming.block, c.incoming.blocks = block, sessions
	c.incoming.active = block != nil || sessions != nil
	c.incoming.rw.Unlock()
	return nil
}

// mapFull maps size bytes the previous kernel must have preserved.
func (c *Core) mapFull(pa, size uint64, what string) ([]byte, error) {
	m, err := c.mem.Map(pa, size)
	if err == nil && uint64(len(m)) < size {
		err = fmt.Errorf("mapped %d bytes: %w", len(m), unix.EFAULT)
	}
	if err != nil {
		return nil, &BootError{Err: fmt.Errorf("%s at %#x: %w", what, pa, err), KernelAction: kernel.ReadsUnpreserved}
	}
	return m[:size], nil
}

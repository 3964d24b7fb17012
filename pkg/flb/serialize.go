package flb

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/pkg/kernel"
)

func le64(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }

// SetupOutgoing models luo_flb_setup_outgoing after its allocation: page is
// the zeroed, preserved FLB page that pkg/luo allocated (kho_alloc_preserve)
// and described in the LUO FDT's luo-flb node. It sets the header's pgcnt and
// makes the outgoing table active.
func (k *Kernel) SetupOutgoing(page []byte) error {
	if len(page) != kernel.PageSize {
		return fmt.Errorf("FLB setup outgoing: page is %d bytes, want %d: %w", len(page), kernel.PageSize, unix.EINVAL)
	}
	binary.LittleEndian.PutUint64(page[0:], PageCount)
	k.pageMu.Lock()
	k.outgoing = page
	k.pageMu.Unlock()
	return nil
}

// SetupIncoming models luo_flb_setup_incoming after pkg/luo checked the
// luo-flb node: page is the FLB page the previous kernel preserved, mapped
// (phys_to_virt). As in 7.0 nothing in it is checked here; lookups read it
// lazily. Only the first kernel.PageSize bytes belong to the table.
func (k *Kernel) SetupIncoming(page []byte) error {
	if page == nil {
		return fmt.Errorf("FLB setup incoming: no page: %w", unix.EINVAL)
	}
	k.pageMu.Lock()
	k.incoming = page[:min(len(page), kernel.PageSize)]
	k.pageMu.Unlock()
	return nil
}

// Serialize models luo_flb_serialize, called by liveupdate_reboot after the
// sessions: one entry for each FLB with an outgoing count above zero, in
// global registration order (name by strscpy, so a 48-byte compatible keeps
// 47 bytes; data; count), then the header count. Like strscpy, the name is
// not padded: bytes a longer name left by an earlier Serialize remain after
// the NUL. Differs from 7.0: without SetupOutgoing the kernel would
// dereference NULL; the model returns an error.
func (k *Kernel) Serialize() error {
	k.pageMu.RLock()
	page := k.outgoing
	k.pageMu.RUnlock()
	if page == nil {
		return fmt.Errorf("FLB serialize: %w", errNotSetUp)
	}
	k.regMu.Lock()
	defer k.regMu.Unlock()
	n := uint64(0)
	for _, f := range k.list {
		f.outgoing.mu.Lock()
		count, data := f.outgoing.count, f.outgoing.data
		f.outgoing.mu.Unlock()
		if count <= 0 {
			continue
		}
		name, _ := parseCompatible(f.Compatible)
		e := page[entryOffset(n):][:EntrySize]
		strscpy(e[:NameLen], name.s)
		binary.LittleEndian.PutUint64(e[NameLen:], data)
		binary.LittleEndian.PutUint64(e[NameLen+8:], uint64(count))
		n++
	}
	binary.LittleEndian.PutUint64(page[8:], n)
	return nil
}

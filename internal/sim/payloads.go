package sim

import (
	"fmt"
	"slices"
	"sync"

	"github.com/kho-sim/kho-sim/internal/payload"
	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/memfd"
)

// payloads is where the simulated subsystems keep their objects' bytes:
// written into memory this boot's KHO preserves, verified in memory the
// previous boot preserved. An incoming payload stays in use from its
// retrieve to its finish, and its pages stay reserved until then.
type payloads struct {
	out *kho.Outgoing
	in  *kho.Incoming // nil on a cold boot

	// mu guards the state below against the callbacks of parallel steps.
	mu   sync.Mutex
	live map[uint64]uint64 // incoming payloads in use: address -> size
	errs []string          // what went wrong, for the boot's payload result
}

func newPayloads(in *kho.Incoming, out *kho.Outgoing) *payloads {
	return &payloads{in: in, out: out, live: map[uint64]uint64{}}
}

// retrieved is the object a retrieve rebuilds.
type retrieved struct {
	name  string
	data  uint64
	info  payload.Info
	memfd *memfd.File // a memfd handler's file
}

// payloadName fits a name into the payload header.
func payloadName(s string) string {
	if len(s) > 31 {
		return s[:31]
	}
	return s
}

// write saves a payload in freshly preserved memory and returns its
// address and what was written.
func (p *payloads) write(info payload.Info) (uint64, payload.Info, error) {
	pa, mem, err := p.out.AllocPreserve(payload.HeaderSize + info.Size)
	if err != nil {
		return 0, info, err
	}
	info, err = payload.Write(mem, info)
	if err != nil {
		_ = p.out.UnpreserveFree(pa)
		return 0, info, err
	}
	return pa, info, nil
}

// read verifies a payload against kho-sim's own record of it. The size
// comes from the record, never from the untrusted header.
func (p *payloads) read(pa uint64, want payload.Info) (payload.Info, error) {
	hdr, err := p.in.Map(pa, payload.HeaderSize)
	if err != nil {
		return want, err
	}
	got, err := payload.ReadHeader(hdr)
	if err != nil {
		return want, err
	}
	body, err := p.in.Map(pa+payload.HeaderSize, max(want.Size, 1))
	if err != nil {
		return want, err
	}
	return got, payload.Verify(got, body[:want.Size], want)
}

// free unpreserves and frees an outgoing payload; a failure is reported
// as the owner's, "FLB name" or "file of handler".
func (p *payloads) free(pa uint64, owner, name string) {
	if err := p.out.UnpreserveFree(pa); err != nil {
		p.fail(fmt.Sprintf("%s %s: unpreserve: %v", owner, name, err))
	}
}

// setLive records (n > 0) or forgets an incoming payload still in use.
func (p *payloads) setLive(pa, n uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n == 0 {
		delete(p.live, pa)
	} else {
		p.live[pa] = n
	}
}

// holds reports whether an incoming payload still in use lies in blk.
func (p *payloads) holds(blk kho.Block) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for pa, n := range p.live {
		if blk.PA < pa+n && pa < blk.PA+blk.Size() {
			return true
		}
	}
	return false
}

func (p *payloads) fail(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.errs = append(p.errs, msg)
}

// failures lists what went wrong with payloads, in order.
func (p *payloads) failures() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.errs)
}

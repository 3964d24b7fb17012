package sim

import (
	"fmt"
	"maps"
	"slices"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/internal/check"
	"github.com/kho-sim/kho-sim/internal/payload"
	"github.com/kho-sim/kho-sim/internal/scenario"
	"github.com/kho-sim/kho-sim/pkg/flb"
)

// simFLB is a simulated subsystem's FLB: preserve saves a payload in
// preserved memory, retrieve verifies it and rebuilds the object, finish
// releases it.
type simFLB struct {
	decl   scenario.FLB
	compat string
	flb    *flb.FLB
	sys    *subsys

	// mu guards the outgoing state below against parallel steps; it is
	// read without it once the steps are over.
	mu sync.Mutex
	// outgoing, as the subsystem sees it
	live  bool
	data  uint64
	info  payload.Info
	files int // preserved dependent files, counted by kho-sim, not the model
}

// flbSet is a boot's FLBs by their scenario name.
type flbSet map[string]*simFLB

// newFLBs builds the scenario's FLBs, not yet registered.
func newFLBs(decls []scenario.FLB, sys *subsys) flbSet {
	s := flbSet{}
	for _, d := range decls {
		f := &simFLB{decl: d, compat: d.CompatibleString(), sys: sys}
		f.flb = &flb.FLB{Compatible: f.compat, Ops: &flb.Ops{
			Preserve: f.preserve, Unpreserve: f.unpreserve, Retrieve: f.retrieve, Finish: f.finish,
		}}
		s[d.Name] = f
	}
	return s
}

// byCompat finds the FLB the kernel knows as compat, a registered one first.
func (s flbSet) byCompat(compat string) *simFLB {
	for _, f := range s {
		if f.compat == compat && f.flb.State().Registered {
			return f
		}
	}
	for _, f := range s {
		if f.compat == compat {
			return f
		}
	}
	return nil
}

func (f *simFLB) record(kind check.Kind, data uint64, err error) {
	f.sys.chk.Record(check.Event{Kind: kind, FLB: f.compat, Data: data, Err: err})
}

func (f *simFLB) preserve(a *flb.OpArgs) error {
	if err := f.sys.faults.trip("preserve", f.decl.Name); err != nil {
		f.record(check.Preserve, 0, err)
		return err
	}
	if f.decl.Data != nil {
		// A fixed data handle and nothing in memory, as the liveupdate
		// test module's test_flb_preserve.
		data := *f.decl.Data
		a.Data, a.Obj = data, &retrieved{name: f.compat, data: data}
		f.mu.Lock()
		f.live, f.data, f.info = true, data, payload.Info{}
		f.mu.Unlock()
		f.record(check.Preserve, data, nil)
		return nil
	}
	info := payload.Info{Name: payloadName(f.compat), Size: uint64(f.decl.Payload), Seed: payload.Seed(f.compat, f.sys.boot)}
	pa, info, err := f.sys.payloads.write(info)
	if err != nil {
		f.record(check.Preserve, 0, err)
		return err
	}
	a.Data, a.Obj = pa, &retrieved{name: f.compat, data: pa, info: info}
	f.mu.Lock()
	f.live, f.data, f.info = true, pa, info
	f.mu.Unlock()
	f.record(check.Preserve, pa, nil)
	return nil
}

func (f *simFLB) unpreserve(a *flb.OpArgs) {
	f.record(check.Unpreserve, a.Data, nil)
	if f.decl.Data == nil {
		f.sys.payloads.free(a.Data, "FLB", f.compat)
	}
	f.mu.Lock()
	f.live, f.data = false, 0
	f.mu.Unlock()
}

func (f *simFLB) retrieve(a *flb.OpArgs) error {
	if err := f.sys.faults.trip("retrieve", f.decl.Name); err != nil {
		f.record(check.Retrieve, a.Data, err)
		return err
	}
	want, ok := f.sys.handedFLB(f.compat)
	if !ok {
		err := fmt.Errorf("FLB %s: retrieve of data %#x, but kho-sim handed over no such FLB: %w", f.compat, a.Data, unix.EINVAL)
		f.record(check.Retrieve, a.Data, err)
		return err
	}
	if f.decl.Data != nil {
		// test_flb_retrieve: the handle must be the one preserved.
		if a.Data != want.Data {
			err := fmt.Errorf("FLB %s: incorrect data handle %#x, expected %#x: %w", f.compat, a.Data, want.Data, unix.EINVAL)
			f.record(check.Retrieve, a.Data, err)
			return err
		}
		f.record(check.Retrieve, a.Data, nil)
		a.Obj = &retrieved{name: f.compat, data: a.Data}
		return nil
	}
	f.record(check.Retrieve, a.Data, nil)
	info, err := f.sys.payloads.read(a.Data, payload.Info{Name: payloadName(f.compat), Size: want.Size, Seed: want.Seed, CRC: want.CRC})
	if err != nil {
		f.sys.chk.PayloadMismatch(f.compat, err.Error())
		f.sys.payloads.fail(fmt.Sprintf("FLB %s: %v", f.compat, err))
		return fmt.Errorf("FLB %s: %v: %w", f.compat, err, unix.EIO)
	}
	f.sys.payloads.setLive(a.Data, payload.HeaderSize+info.Size)
	a.Obj = &retrieved{name: f.compat, data: a.Data, info: info}
	return nil
}

func (f *simFLB) finish(a *flb.OpArgs) {
	var data uint64
	if r, ok := a.Obj.(*retrieved); ok {
		data = r.data
	}
	f.record(check.Finish, data, nil)
	f.sys.payloads.setLive(data, 0)
}

// countFiles adds d to the dependent files kho-sim counts for the FLB,
// which the metadata hands over as the expected serialized count.
func (f *simFLB) countFiles(d int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.files += d
}

// preserved lists the FLBs holding saved state for the next boot, by
// name, as the metadata hands them over.
func (s flbSet) preserved() []MetaFLB {
	var out []MetaFLB
	for _, name := range slices.Sorted(maps.Keys(s)) {
		if f := s[name]; f.live {
			out = append(out, MetaFLB{Name: f.compat, Data: f.data, Count: uint64(f.files), Size: f.info.Size, Seed: f.info.Seed, CRC: f.info.CRC, Handle: f.decl.Data != nil})
		}
	}
	return out
}

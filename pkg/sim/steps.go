package sim

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/pkg/check"
	"github.com/kho-sim/kho-sim/pkg/flb"
	"github.com/kho-sim/kho-sim/pkg/luo"
	"github.com/kho-sim/kho-sim/pkg/payload"
	"github.com/kho-sim/kho-sim/pkg/scenario"
)

// simFLB is a simulated subsystem's FLB: preserve saves a payload in
// preserved memory, retrieve verifies it and rebuilds the object, finish
// releases it.
type simFLB struct {
	decl   scenario.FLB
	compat string
	flb    *flb.FLB
	// outgoing, as the subsystem sees it
	live  bool
	data  uint64
	info  payload.Info
	files int // preserved dependent files, counted by kho-sim, not the model
}

// simHandler is a simulated file handler.
type simHandler struct {
	decl scenario.Handler
	h    *luo.FileHandler
}

// simFile is one declared file in this boot.
type simFile struct {
	handler   string
	preserved bool
	data      uint64
	info      payload.Info
}

// retrieved is the object a retrieve rebuilds.
type retrieved struct {
	name string
	data uint64
	info payload.Info
}

// fault makes the nth call of an op fail.
type fault struct {
	op, target string
	nth, calls int
	errno      unix.Errno
}

// trip counts a call and reports the errno if this call must fail.
func (b *boot) trip(op, target string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, f := range b.faults {
		if f.op == op && f.target == target {
			f.calls++
			if f.calls == f.nth {
				return fmt.Errorf("injected fault: %s of %s, call %d: %w", op, target, f.calls, f.errno)
			}
		}
	}
	return nil
}

// register models module init: every handler and, unless the scenario
// registers them itself, its FLBs.
func (b *boot) register() {
	for _, d := range b.sc.FLBs {
		f := &simFLB{decl: d, compat: d.CompatibleString()}
		f.flb = &flb.FLB{Compatible: f.compat, Ops: b.flbOps(f)}
		b.flbs[d.Name] = f
	}
	for _, d := range b.sc.Handlers {
		b.handlers[d.Name] = &simHandler{decl: d, h: &luo.FileHandler{Compatible: d.Name, Ops: b.fileOps(d.Name)}}
	}
	for _, d := range b.sc.Handlers {
		b.stepErr(scenario.Step{Op: "register-handler", Arg: d.Name}, b.core.RegisterFileHandler(b.handlers[d.Name].h))
		if !d.AutoRegister() {
			continue
		}
		for _, name := range d.FLBs {
			b.stepErr(scenario.Step{Op: "register-flb", Args: map[string]string{"handler": d.Name, "flb": name}}, b.registerFLB(d.Name, name))
		}
	}
}

func (b *boot) registerFLB(handler, name string) error {
	err := b.core.RegisterFLB(b.handlers[handler].h, b.flbs[name].flb)
	if err == nil {
		b.chk.Depends(handler, name)
		b.deps[handler] = append(b.deps[handler], name)
	}
	return err
}

func (b *boot) flbOps(f *simFLB) *flb.Ops {
	return &flb.Ops{
		Preserve: func(a *flb.OpArgs) error {
			if err := b.trip("preserve", f.decl.Name); err != nil {
				b.chk.Record(check.Event{Kind: check.Preserve, FLB: f.compat, Err: err})
				return err
			}
			info := payload.Info{Name: payloadName(f.compat), Size: uint64(f.decl.Payload), Seed: payload.Seed(f.compat, b.n)}
			pa, info, err := b.writePayload(info)
			if err != nil {
				b.chk.Record(check.Event{Kind: check.Preserve, FLB: f.compat, Err: err})
				return err
			}
			a.Data, a.Obj = pa, &retrieved{name: f.compat, data: pa, info: info}
			b.mu.Lock()
			f.live, f.data, f.info = true, pa, info
			b.mu.Unlock()
			b.chk.Record(check.Event{Kind: check.Preserve, FLB: f.compat, Data: pa})
			return nil
		},
		Unpreserve: func(a *flb.OpArgs) {
			b.chk.Record(check.Event{Kind: check.Unpreserve, FLB: f.compat, Data: a.Data})
			err := b.out.UnpreserveFree(a.Data)
			b.mu.Lock()
			defer b.mu.Unlock()
			if err != nil {
				b.payloadErrs = append(b.payloadErrs, fmt.Sprintf("FLB %s: unpreserve: %v", f.compat, err))
			}
			f.live, f.data = false, 0
		},
		Retrieve: func(a *flb.OpArgs) error {
			if err := b.trip("retrieve", f.decl.Name); err != nil {
				b.chk.Record(check.Event{Kind: check.Retrieve, FLB: f.compat, Data: a.Data, Err: err})
				return err
			}
			want, ok := b.metaFLB(f.compat)
			if !ok {
				err := fmt.Errorf("FLB %s: retrieve of data %#x, but kho-sim handed over no such FLB: %w", f.compat, a.Data, unix.EINVAL)
				b.chk.Record(check.Event{Kind: check.Retrieve, FLB: f.compat, Data: a.Data, Err: err})
				return err
			}
			b.chk.Record(check.Event{Kind: check.Retrieve, FLB: f.compat, Data: a.Data})
			info, err := b.readPayload(a.Data, payload.Info{Name: payloadName(f.compat), Size: want.Size, Seed: want.Seed, CRC: want.CRC})
			if err != nil {
				b.chk.PayloadMismatch(f.compat, err.Error())
				b.payloadErr(fmt.Sprintf("FLB %s: %v", f.compat, err))
				return fmt.Errorf("FLB %s: %v: %w", f.compat, err, unix.EIO)
			}
			b.setLive(a.Data, payload.HeaderSize+info.Size)
			a.Obj = &retrieved{name: f.compat, data: a.Data, info: info}
			return nil
		},
		Finish: func(a *flb.OpArgs) {
			var data uint64
			if r, ok := a.Obj.(*retrieved); ok {
				data = r.data
			}
			b.chk.Record(check.Event{Kind: check.Finish, FLB: f.compat, Data: data})
			b.setLive(data, 0)
		},
	}
}

func (b *boot) fileOps(handler string) luo.FileOps {
	return luo.FileOps{
		CanPreserve: func(_ *luo.FileHandler, file any) bool {
			f, ok := file.(*simFile)
			return ok && f.handler == handler
		},
		Preserve: func(a *luo.FileOpArgs) error {
			if err := b.trip("file-preserve", handler); err != nil {
				return err
			}
			f := a.File.(*simFile)
			pa, info, err := b.writePayload(f.info)
			if err != nil {
				return err
			}
			a.SerializedData, a.PrivateData = pa, f
			b.mu.Lock()
			f.data, f.info = pa, info
			b.mu.Unlock()
			return nil
		},
		Unpreserve: func(a *luo.FileOpArgs) {
			err := b.out.UnpreserveFree(a.SerializedData)
			b.mu.Lock()
			if err != nil {
				b.payloadErrs = append(b.payloadErrs, fmt.Sprintf("file of %s: unpreserve: %v", handler, err))
			}
			if f, ok := a.PrivateData.(*simFile); ok && f.preserved {
				f.preserved = false
				b.countFilesLocked(handler, -1)
			}
			b.mu.Unlock()
			b.chk.FileUnpreserved(handler)
		},
		Retrieve: func(a *luo.FileOpArgs) error {
			if err := b.trip("file-retrieve", handler); err != nil {
				return err
			}
			want, ok := b.metaFile(a.SerializedData)
			if !ok {
				return fmt.Errorf("file of %s with data %#x was not handed over by kho-sim: %w", handler, a.SerializedData, unix.EINVAL)
			}
			info, err := b.readPayload(a.SerializedData, payload.Info{Name: payloadName(fmt.Sprintf("%s/%d", want.Session, want.Token)), Size: want.Size, Seed: want.Seed, CRC: want.CRC})
			if err != nil {
				b.payloadErr(fmt.Sprintf("file %s/%d: %v", want.Session, want.Token, err))
				return fmt.Errorf("file %s/%d: %v: %w", want.Session, want.Token, err, unix.EIO)
			}
			b.setLive(a.SerializedData, payload.HeaderSize+info.Size)
			a.File = &retrieved{name: fmt.Sprintf("%s/%d", want.Session, want.Token), data: a.SerializedData, info: info}
			return nil
		},
		CanFinish: func(a *luo.FileOpArgs) bool {
			return b.trip("can-finish", handler) == nil
		},
		Finish: func(a *luo.FileOpArgs) {
			// The handler finishes before its FLBs (luo_file_finish_one), so
			// the checker learns of the file first.
			b.chk.FileFinished(handler)
			b.setLive(a.SerializedData, 0)
		},
	}
}

// setLive records (n > 0) or forgets an incoming payload still in use.
func (b *boot) setLive(pa, n uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n == 0 {
		delete(b.live, pa)
	} else {
		b.live[pa] = n
	}
}

func (b *boot) payloadErr(msg string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.payloadErrs = append(b.payloadErrs, msg)
}

// payloadName fits a name into the payload header.
func payloadName(s string) string {
	if len(s) > 31 {
		return s[:31]
	}
	return s
}

func (b *boot) writePayload(info payload.Info) (uint64, payload.Info, error) {
	pa, mem, err := b.out.AllocPreserve(payload.HeaderSize + info.Size)
	if err != nil {
		return 0, info, err
	}
	info, err = payload.Write(mem, info)
	if err != nil {
		_ = b.out.UnpreserveFree(pa)
		return 0, info, err
	}
	return pa, info, nil
}

// readPayload verifies a payload against kho-sim's own record of it. The
// size comes from the record, never from the untrusted header.
func (b *boot) readPayload(pa uint64, want payload.Info) (payload.Info, error) {
	hdr, err := b.in.Map(pa, payload.HeaderSize)
	if err != nil {
		return want, err
	}
	got, err := payload.ReadHeader(hdr)
	if err != nil {
		return want, err
	}
	body, err := b.in.Map(pa+payload.HeaderSize, max(want.Size, 1))
	if err != nil {
		return want, err
	}
	return got, payload.Verify(got, body[:want.Size], want)
}

func (b *boot) metaFLB(name string) (MetaFLB, bool) {
	if b.inMeta == nil {
		return MetaFLB{}, false
	}
	for _, f := range b.inMeta.FLBs {
		if f.Name == name {
			return f, true
		}
	}
	return MetaFLB{}, false
}

func (b *boot) metaFile(data uint64) (MetaFile, bool) {
	if b.inMeta == nil {
		return MetaFile{}, false
	}
	for _, f := range b.inMeta.Files {
		if f.Data == data {
			return f, true
		}
	}
	return MetaFile{}, false
}

// stepErr compares a step's error with what the scenario expects.
func (b *boot) stepErr(st scenario.Step, err error) {
	var got unix.Errno
	if err != nil && !errors.As(err, &got) {
		got = 0
	}
	switch {
	case err == nil && st.Expect == 0:
		return
	case err == nil:
		b.failStep(st, "succeeded, want %s", unix.ErrnoName(st.Expect))
	case st.Expect == 0:
		b.failStep(st, "%v", err)
	case got != st.Expect:
		b.failStep(st, "got %v, want %s", err, unix.ErrnoName(st.Expect))
	}
}

func (b *boot) failStep(st scenario.Step, format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	where := ""
	if st.Line > 0 {
		where = fmt.Sprintf(" (%s:%d)", b.sc.Source, st.Line)
	}
	b.stepErrs = append(b.stepErrs, fmt.Sprintf("step %q%s: %s", st.String(), where, fmt.Sprintf(format, args...)))
}

// step runs one scenario step.
func (b *boot) step(st scenario.Step) {
	switch st.Op {
	case "preserve-all":
		b.inParallel(st, b.declaredSessions(), func(name string) {
			if !b.hasSession(name) {
				b.stepErr(st, b.createSession(name))
			}
			for _, f := range b.sc.Session(name).Files {
				if k := (fileKey{name, f.Token}); !b.isPreserved(k) {
					b.stepErr(st, b.preserve(k))
				}
			}
		})
	case "churn":
		rounds, _ := strconv.Atoi(st.Args["rounds"])
		b.inParallel(st, b.declaredSessions(), func(name string) {
			for range rounds {
				b.stepErr(st, b.createSession(name))
				for _, f := range b.sc.Session(name).Files {
					b.stepErr(st, b.preserve(fileKey{name, f.Token}))
				}
				b.stepErr(st, b.closeSession(name))
			}
		})
	case "create-session":
		b.stepErr(st, b.createSession(st.Target()))
	case "preserve":
		s, tok, _ := scenario.SplitFile(st.Target())
		b.stepErr(st, b.preserve(fileKey{s, tok}))
	case "close":
		b.stepErr(st, b.closeSession(st.Target()))
	case "abort":
		b.stepErr(st, b.core.Abort())
		b.afterAbort()
	case "retrieve-all":
		b.inParallel(st, b.inMetaSessions(), func(name string) {
			b.mu.Lock()
			_, ok := b.inSessions[name]
			b.mu.Unlock()
			if !ok {
				b.stepErr(st, b.retrieveSession(name))
			}
			for _, f := range b.inMetaFiles() {
				if f.Session == name {
					b.stepErr(st, b.retrieveFile(f.Session, f.Token))
				}
			}
		})
	case "retrieve-session":
		b.stepErr(st, b.retrieveSession(st.Target()))
	case "retrieve-file":
		s, tok, _ := scenario.SplitFile(st.Target())
		b.stepErr(st, b.retrieveFile(s, tok))
	case "get-incoming-all":
		if b.inMeta == nil {
			break
		}
		for _, f := range b.inMeta.FLBs {
			if sf := b.byCompat(f.Name); sf != nil {
				_, err := b.core.FLB().GetIncoming(sf.flb)
				b.stepErr(st, err)
			}
		}
	case "get-incoming":
		_, err := b.core.FLB().GetIncoming(b.flbs[st.Target()].flb)
		b.stepErr(st, err)
	case "get-outgoing":
		_, err := b.core.FLB().GetOutgoing(b.flbs[st.Target()].flb)
		b.stepErr(st, err)
	case "finish-all":
		b.mu.Lock()
		names := slices.Sorted(maps.Keys(b.inSessions))
		b.mu.Unlock()
		b.inParallel(st, names, func(name string) { b.stepErr(st, b.finishSession(name)) })
	case "finish":
		b.stepErr(st, b.finishSession(st.Target()))
	case "register-handler":
		b.stepErr(st, b.core.RegisterFileHandler(b.handlers[st.Target()].h))
	case "register-flb":
		b.stepErr(st, b.registerFLB(st.Args["handler"], st.Args["flb"]))
	case "unregister-flb":
		err := b.core.UnregisterFLB(b.handlers[st.Args["handler"]].h, b.flbs[st.Args["flb"]].flb)
		if err == nil {
			h, name := st.Args["handler"], st.Args["flb"]
			b.chk.Undepends(h, name)
			b.deps[h] = slices.DeleteFunc(b.deps[h], func(s string) bool { return s == name })
		}
		b.stepErr(st, err)
	case "fault":
		nth, _ := strconv.Atoi(st.Args["nth"])
		errno, _ := scenario.ParseErrno(st.Args["errno"])
		target := st.Args["flb"]
		if target == "" {
			target = st.Args["handler"]
		}
		b.faults = append(b.faults, &fault{op: st.Args["op"], target: target, nth: nth, errno: errno})
	default:
		b.failStep(st, "operation not supported by this build")
	}
}

// inParallel runs fn for every name on the goroutines the step asks for.
// While goroutines run, other goroutines' file operations are half done, so
// the FLB invariant is checked once they have all finished.
func (b *boot) inParallel(st scenario.Step, names []string, fn func(name string)) {
	n := st.Parallel()
	if n == 1 {
		for _, name := range names {
			fn(name)
		}
		return
	}
	b.parallel.Store(true)
	work := make(chan string)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for name := range work {
				fn(name)
			}
		})
	}
	for _, name := range names {
		work <- name
	}
	close(work)
	wg.Wait()
	b.parallel.Store(false)
	b.chk.Settle(st.Op)
}

func (b *boot) declaredSessions() []string {
	names := make([]string, len(b.sc.Sessions))
	for i, s := range b.sc.Sessions {
		names[i] = s.Name
	}
	return names
}

func (b *boot) hasSession(name string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.sessions[name]
	return ok
}

func (b *boot) isPreserved(k fileKey) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.files[k] != nil && b.files[k].preserved
}

func (b *boot) createSession(name string) error {
	s, err := b.core.CreateSession(name)
	if err == nil {
		b.mu.Lock()
		b.sessions[name] = s
		b.mu.Unlock()
	}
	return err
}

func (b *boot) preserve(k fileKey) error {
	d := b.sc.File(k.session, k.token)
	b.mu.Lock()
	s, ok := b.sessions[k.session]
	if !ok {
		b.mu.Unlock()
		return fmt.Errorf("session %q not created in this boot: %w", k.session, unix.ENOENT)
	}
	f := b.files[k]
	if f == nil {
		f = &simFile{handler: d.Handler}
		b.files[k] = f
	}
	name := fmt.Sprintf("%s/%d", k.session, k.token)
	f.info = payload.Info{Name: payloadName(name), Size: uint64(d.Payload), Seed: payload.Seed(name, b.n)}
	b.mu.Unlock()
	err := s.PreserveFile(k.token, f)
	if err == nil {
		b.mu.Lock()
		f.preserved = true
		b.countFilesLocked(d.Handler, +1)
		b.mu.Unlock()
		b.chk.FilePreserved(d.Handler)
	}
	if !b.parallel.Load() {
		b.chk.Settle("preserve " + name)
	}
	return err
}

// countFilesLocked keeps kho-sim's own count of preserved files per FLB,
// which the metadata hands over as the expected serialized count.
func (b *boot) countFilesLocked(handler string, d int) {
	for _, name := range b.deps[handler] {
		b.flbs[name].files += d
	}
}

func (b *boot) closeSession(name string) error {
	b.mu.Lock()
	out, isOut := b.sessions[name]
	in, isIn := b.inSessions[name]
	delete(b.sessions, name)
	if !isOut {
		delete(b.inSessions, name)
	}
	b.mu.Unlock()
	switch {
	case isOut:
		err := out.Close()
		if !b.parallel.Load() {
			b.chk.Settle("close " + name)
		}
		return err
	case isIn:
		return in.Close()
	}
	return fmt.Errorf("session %q is not open: %w", name, unix.ENOENT)
}

// afterAbort forgets closed sessions and checks the FLBs settled.
func (b *boot) afterAbort() {
	open, _ := b.core.Sessions()
	b.mu.Lock()
	for name := range b.sessions {
		if !slices.Contains(open, name) {
			delete(b.sessions, name)
		}
	}
	b.mu.Unlock()
	b.chk.Settle("abort")
}

func (b *boot) retrieveSession(name string) error {
	s, err := b.core.RetrieveSession(name)
	if err == nil {
		b.mu.Lock()
		b.inSessions[name] = s
		b.mu.Unlock()
	}
	return err
}

func (b *boot) retrieveFile(session string, token uint64) error {
	b.mu.Lock()
	s, ok := b.inSessions[session]
	b.mu.Unlock()
	if !ok {
		return fmt.Errorf("session %q not retrieved: %w", session, unix.ENOENT)
	}
	_, err := s.RetrieveFile(token)
	return err
}

func (b *boot) finishSession(name string) error {
	b.mu.Lock()
	s, ok := b.inSessions[name]
	b.mu.Unlock()
	if !ok {
		return fmt.Errorf("session %q not retrieved: %w", name, unix.ENOENT)
	}
	err := s.Finish()
	if err == nil {
		b.mu.Lock()
		delete(b.inSessions, name)
		b.mu.Unlock()
	}
	return err
}

func (b *boot) byCompat(compat string) *simFLB {
	for _, f := range b.flbs {
		if f.compat == compat && f.flb.State().Registered {
			return f
		}
	}
	for _, f := range b.flbs {
		if f.compat == compat {
			return f
		}
	}
	return nil
}

// inMetaSessions lists the sessions the previous boot handed over.
func (b *boot) inMetaSessions() []string {
	var out []string
	if b.inMeta == nil {
		return nil
	}
	for _, f := range b.inMeta.Files {
		if !slices.Contains(out, f.Session) {
			out = append(out, f.Session)
		}
	}
	return out
}

func (b *boot) inMetaFiles() []MetaFile {
	if b.inMeta == nil {
		return nil
	}
	return b.inMeta.Files
}

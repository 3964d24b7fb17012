package sim

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/internal/check"
	"github.com/kho-sim/kho-sim/internal/payload"
	"github.com/kho-sim/kho-sim/internal/scenario"
	"github.com/kho-sim/kho-sim/pkg/luo"
)

// userspace is the process that holds /dev/liveupdate: the sessions it
// created or retrieved and the files it declared, as it sees them.
type userspace struct {
	sc       *scenario.Scenario
	boot     int
	core     *luo.Core
	chk      *check.Checker
	handlers handlerSet
	handed   *Meta // nil on a cold boot

	// parallel is set while a step runs on several goroutines; the
	// checker's invariant is then checked once they are done.
	parallel atomic.Bool

	mu         sync.Mutex // the maps below
	sessions   map[string]*luo.Session
	inSessions map[string]*luo.Session
	files      map[fileKey]*simFile
}

type fileKey struct {
	session string
	token   uint64
}

// compareFileKeys orders files by session, then token.
func compareFileKeys(a, b fileKey) int {
	if c := strings.Compare(a.session, b.session); c != 0 {
		return c
	}
	return cmp.Compare(a.token, b.token)
}

// inParallel runs fn for every name on the goroutines the step asks for.
// While goroutines run, other goroutines' file operations are half done, so
// the FLB invariant is checked once they have all finished.
func (u *userspace) inParallel(st scenario.Step, names []string, fn func(name string)) {
	n := st.Parallel()
	if n == 1 {
		for _, name := range names {
			fn(name)
		}
		return
	}
	u.parallel.Store(true)
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
	u.parallel.Store(false)
	u.chk.Settle(st.Op)
}

// checkSettled checks the FLB invariant after an operation, unless
// goroutines of a parallel step are still half way through theirs.
func (u *userspace) checkSettled(what string) {
	if !u.parallel.Load() {
		u.chk.Settle(what)
	}
}

func (u *userspace) declaredSessions() []string {
	names := make([]string, len(u.sc.Sessions))
	for i, s := range u.sc.Sessions {
		names[i] = s.Name
	}
	return names
}

// handedSessions lists the sessions the previous boot handed over.
func (u *userspace) handedSessions() []string {
	var out []string
	if u.handed == nil {
		return nil
	}
	for _, f := range u.handed.Files {
		if !slices.Contains(out, f.Session) {
			out = append(out, f.Session)
		}
	}
	return out
}

func (u *userspace) handedFiles() []MetaFile {
	if u.handed == nil {
		return nil
	}
	return u.handed.Files
}

func (u *userspace) hasSession(name string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	_, ok := u.sessions[name]
	return ok
}

func (u *userspace) hasRetrieved(name string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	_, ok := u.inSessions[name]
	return ok
}

// retrievedSessions lists the incoming sessions held, sorted.
func (u *userspace) retrievedSessions() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Sorted(maps.Keys(u.inSessions))
}

func (u *userspace) isPreserved(k fileKey) bool {
	u.mu.Lock()
	f := u.files[k]
	u.mu.Unlock()
	return f != nil && f.isPreserved()
}

func (u *userspace) createSession(name string) error {
	s, err := u.core.CreateSession(name)
	return u.hold(u.sessions, name, s, err)
}

// hold keeps in held (sessions or inSessions) the session the core opened
// as name, unless it failed.
func (u *userspace) hold(held map[string]*luo.Session, name string, s *luo.Session, err error) error {
	if err == nil {
		u.mu.Lock()
		held[name] = s
		u.mu.Unlock()
	}
	return err
}

// preserve hands a declared file to its open session, with a payload
// seeded for this boot.
func (u *userspace) preserve(k fileKey) error {
	d := u.sc.File(k.session, k.token)
	u.mu.Lock()
	s, ok := u.sessions[k.session]
	if !ok {
		u.mu.Unlock()
		return fmt.Errorf("session %q not created in this boot: %w", k.session, unix.ENOENT)
	}
	f := u.files[k]
	if f == nil {
		f = &simFile{handler: d.Handler}
		u.files[k] = f
	}
	u.mu.Unlock()
	name := fileName(k.session, k.token)
	info := payload.Info{Name: payloadName(name), Size: uint64(d.Payload), Seed: payload.Seed(name, u.boot)}
	if u.handlers.isMemfd(d.Handler) {
		spec, err := MemfdSpec(k.session, *d, u.boot)
		if err != nil {
			return err
		}
		f.prepareMemfd(spec, info)
	} else {
		f.prepare(info)
	}
	err := s.PreserveFile(k.token, f)
	if err == nil {
		f.markPreserved()
		u.handlers.countFiles(d.Handler, +1)
		u.chk.FilePreserved(d.Handler)
	}
	u.checkSettled("preserve " + name)
	return err
}

// closeSession closes an outgoing session, unpreserving its files, or an
// incoming one.
func (u *userspace) closeSession(name string) error {
	u.mu.Lock()
	out, isOut := u.sessions[name]
	in, isIn := u.inSessions[name]
	delete(u.sessions, name)
	if !isOut {
		delete(u.inSessions, name)
	}
	u.mu.Unlock()
	switch {
	case isOut:
		err := out.Close()
		u.checkSettled("close " + name)
		return err
	case isIn:
		return in.Close()
	}
	return fmt.Errorf("session %q is not open: %w", name, unix.ENOENT)
}

// abort runs the kernel's abort path and forgets the sessions it closed.
func (u *userspace) abort() error {
	err := u.core.Abort()
	u.afterAbort()
	return err
}

// afterAbort forgets closed sessions and checks the FLBs settled.
func (u *userspace) afterAbort() {
	open, _ := u.core.Sessions()
	u.mu.Lock()
	for name := range u.sessions {
		if !slices.Contains(open, name) {
			delete(u.sessions, name)
		}
	}
	u.mu.Unlock()
	u.chk.Settle("abort")
}

func (u *userspace) retrieveSession(name string) error {
	s, err := u.core.RetrieveSession(name)
	return u.hold(u.inSessions, name, s, err)
}

func (u *userspace) retrieveFile(session string, token uint64) error {
	u.mu.Lock()
	s, ok := u.inSessions[session]
	u.mu.Unlock()
	if !ok {
		return fmt.Errorf("session %q not retrieved: %w", session, unix.ENOENT)
	}
	_, err := s.RetrieveFile(token)
	return err
}

func (u *userspace) finishSession(name string) error {
	u.mu.Lock()
	s, ok := u.inSessions[name]
	u.mu.Unlock()
	if !ok {
		return fmt.Errorf("session %q not retrieved: %w", name, unix.ENOENT)
	}
	err := s.Finish()
	if err == nil {
		u.mu.Lock()
		delete(u.inSessions, name)
		u.mu.Unlock()
	}
	return err
}

// preservedFiles lists the files preserved for the next boot, by session
// and token.
func (u *userspace) preservedFiles() []MetaFile {
	var out []MetaFile
	for _, k := range slices.SortedFunc(maps.Keys(u.files), compareFileKeys) {
		f := u.files[k]
		if f.preserved {
			out = append(out, MetaFile{Session: k.session, Token: k.token, Handler: f.handler, Data: f.data, Size: f.info.Size, Seed: f.info.Seed, CRC: f.info.CRC, Memfd: f.written != nil})
		}
	}
	return out
}

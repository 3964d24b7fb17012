package sim

import (
	"errors"
	"fmt"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/internal/check"
	"github.com/kho-sim/kho-sim/internal/scenario"
	"github.com/kho-sim/kho-sim/pkg/luo"
)

// steps runs a boot's scenario steps. Each operation of the scenario
// language has one handler in ops; what a step returns is compared with
// what the scenario expects, and every difference is logged.
type steps struct {
	ops      map[string]stepFunc
	user     *userspace
	core     *luo.Core
	chk      *check.Checker
	flbs     flbSet
	handlers handlerSet
	faults   *faults
	log      stepLog
}

// stepFunc runs one step of its operation.
type stepFunc func(s *steps, st scenario.Step)

// stepTable maps every operation of internal/scenario to its handler. It is
// built for each boot, so no table is shared between boots.
func stepTable() map[string]stepFunc {
	return map[string]stepFunc{
		// outgoing: sessions and files the next boot receives
		"create-session": (*steps).createSession,
		"preserve":       (*steps).preserve,
		"preserve-all":   (*steps).preserveAll,
		"close":          (*steps).close,
		"churn":          (*steps).churn,
		"abort":          (*steps).abort,
		// incoming: what the previous boot handed over
		"retrieve-session": (*steps).retrieveSession,
		"retrieve-file":    (*steps).retrieveFile,
		"retrieve-all":     (*steps).retrieveAll,
		"finish":           (*steps).finish,
		"finish-all":       (*steps).finishAll,
		// FLBs, as the subsystems reach them
		"get-incoming":     (*steps).getIncoming,
		"get-incoming-all": (*steps).getIncomingAll,
		"get-outgoing":     (*steps).getOutgoing,
		// module init and exit
		"register-handler": (*steps).registerHandler,
		"register-flb":     (*steps).registerFLB,
		"unregister-flb":   (*steps).unregisterFLB,
		// failures the scenario injects
		"fault": (*steps).fault,
	}
}

// run runs one step.
func (s *steps) run(st scenario.Step) {
	op, ok := s.ops[st.Op]
	if !ok {
		s.log.fail(st, "operation not supported by this build")
		return
	}
	op(s, st)
}

func (s *steps) createSession(st scenario.Step) {
	s.log.check(st, s.user.createSession(st.Target()))
}

func (s *steps) preserve(st scenario.Step) {
	session, tok, _ := scenario.SplitFile(st.Target())
	s.log.check(st, s.user.preserve(fileKey{session, tok}))
}

// preserveAll creates every declared session not open yet and preserves
// each of its files not preserved yet.
func (s *steps) preserveAll(st scenario.Step) {
	s.user.inParallel(st, s.user.declaredSessions(), func(name string) {
		if !s.user.hasSession(name) {
			s.log.check(st, s.user.createSession(name))
		}
		for _, f := range s.user.sc.Session(name).Files {
			if k := (fileKey{name, f.Token}); !s.user.isPreserved(k) {
				s.log.check(st, s.user.preserve(k))
			}
		}
	})
}

func (s *steps) close(st scenario.Step) {
	s.log.check(st, s.user.closeSession(st.Target()))
}

// churn creates, fills and closes every declared session, round after
// round.
func (s *steps) churn(st scenario.Step) {
	rounds, _ := strconv.Atoi(st.Args["rounds"])
	s.user.inParallel(st, s.user.declaredSessions(), func(name string) {
		for range rounds {
			s.log.check(st, s.user.createSession(name))
			for _, f := range s.user.sc.Session(name).Files {
				s.log.check(st, s.user.preserve(fileKey{name, f.Token}))
			}
			s.log.check(st, s.user.closeSession(name))
		}
	})
}

func (s *steps) abort(st scenario.Step) {
	s.log.check(st, s.user.abort())
}

func (s *steps) retrieveSession(st scenario.Step) {
	s.log.check(st, s.user.retrieveSession(st.Target()))
}

func (s *steps) retrieveFile(st scenario.Step) {
	session, tok, _ := scenario.SplitFile(st.Target())
	s.log.check(st, s.user.retrieveFile(session, tok))
}

// retrieveAll retrieves every session and file the previous boot handed
// over.
func (s *steps) retrieveAll(st scenario.Step) {
	s.user.inParallel(st, s.user.handedSessions(), func(name string) {
		if !s.user.hasRetrieved(name) {
			s.log.check(st, s.user.retrieveSession(name))
		}
		for _, f := range s.user.handedFiles() {
			if f.Session == name {
				s.log.check(st, s.user.retrieveFile(f.Session, f.Token))
			}
		}
	})
}

func (s *steps) finish(st scenario.Step) {
	s.log.check(st, s.user.finishSession(st.Target()))
}

func (s *steps) finishAll(st scenario.Step) {
	s.user.inParallel(st, s.user.retrievedSessions(), func(name string) {
		s.log.check(st, s.user.finishSession(name))
	})
}

func (s *steps) getIncoming(st scenario.Step) {
	_, err := s.core.FLB().GetIncoming(s.flbs[st.Target()].flb)
	s.log.check(st, err)
}

// getIncomingAll asks for the incoming state of every FLB the previous
// boot handed over that this boot knows.
func (s *steps) getIncomingAll(st scenario.Step) {
	if s.user.handed == nil {
		return
	}
	for _, f := range s.user.handed.FLBs {
		if sf := s.flbs.byCompat(f.Name); sf != nil {
			_, err := s.core.FLB().GetIncoming(sf.flb)
			s.log.check(st, err)
		}
	}
}

func (s *steps) getOutgoing(st scenario.Step) {
	_, err := s.core.FLB().GetOutgoing(s.flbs[st.Target()].flb)
	s.log.check(st, err)
}

func (s *steps) registerHandler(st scenario.Step) {
	s.log.check(st, s.core.RegisterFileHandler(s.handlers[st.Target()].h))
}

func (s *steps) registerFLB(st scenario.Step) {
	h, f := s.handlers[st.Args["handler"]], s.flbs[st.Args["flb"]]
	err := s.core.RegisterFLB(h.h, f.flb)
	if err == nil {
		s.chk.Depends(h.name(), f.decl.Name)
		h.link(f)
	}
	s.log.check(st, err)
}

func (s *steps) unregisterFLB(st scenario.Step) {
	h, f := s.handlers[st.Args["handler"]], s.flbs[st.Args["flb"]]
	err := s.core.UnregisterFLB(h.h, f.flb)
	if err == nil {
		s.chk.Undepends(h.name(), f.decl.Name)
		h.unlink(f.decl.Name)
	}
	s.log.check(st, err)
}

func (s *steps) fault(st scenario.Step) {
	nth, _ := strconv.Atoi(st.Args["nth"])
	errno, _ := scenario.ParseErrno(st.Args["errno"])
	target := st.Args["flb"]
	if target == "" {
		target = st.Args["handler"]
	}
	s.faults.add(&fault{op: st.Args["op"], target: target, nth: nth, errno: errno})
}

// stepLog collects the steps that did not return what the scenario
// expects.
type stepLog struct {
	source string // the scenario's file, for line numbers

	mu   sync.Mutex
	errs []string
}

// check compares a step's error with what the scenario expects.
func (l *stepLog) check(st scenario.Step, err error) {
	switch {
	case err == nil && st.Expect == 0:
		return
	case err == nil:
		l.fail(st, "succeeded, want %s", unix.ErrnoName(st.Expect))
	case st.Expect == 0:
		l.fail(st, "%v", err)
	default:
		// The first errno in the chain is what the call returned.
		var got unix.Errno
		if !errors.As(err, &got) || got != st.Expect {
			l.fail(st, "got %v, want %s", err, unix.ErrnoName(st.Expect))
		}
	}
}

func (l *stepLog) fail(st scenario.Step, format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	where := ""
	if st.Line > 0 {
		where = fmt.Sprintf(" (%s:%d)", l.source, st.Line)
	}
	l.errs = append(l.errs, fmt.Sprintf("step %q%s: %s", st.String(), where, fmt.Sprintf(format, args...)))
}

// failures lists the steps that went wrong, in order.
func (l *stepLog) failures() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.errs...)
}

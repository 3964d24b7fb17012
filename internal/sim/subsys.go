package sim

import (
	"fmt"
	"slices"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/internal/check"
	"github.com/kho-sim/kho-sim/internal/scenario"
)

// subsys is what the simulated subsystems of one boot share: their FLBs'
// and file handlers' callbacks report to the checker, keep their objects
// in the payload store, fail where the scenario injects a fault, and check
// what they retrieve against what the previous boot handed over.
type subsys struct {
	boot     int // this boot's number, part of every payload's seed
	sc       *scenario.Scenario
	chk      *check.Checker
	payloads *payloads
	faults   *faults
	handed   *Meta // nil on a cold boot
}

// handedFLB is the FLB the previous boot says it handed over as name.
func (s *subsys) handedFLB(name string) (MetaFLB, bool) {
	if s.handed == nil {
		return MetaFLB{}, false
	}
	return find(s.handed.FLBs, func(f MetaFLB) bool { return f.Name == name })
}

// handedFile is the file the previous boot says it handed over with data.
func (s *subsys) handedFile(data uint64) (MetaFile, bool) {
	if s.handed == nil {
		return MetaFile{}, false
	}
	return find(s.handed.Files, func(f MetaFile) bool { return f.Data == data })
}

// find returns the first element of list that match accepts.
func find[T any](list []T, match func(T) bool) (T, bool) {
	if i := slices.IndexFunc(list, match); i >= 0 {
		return list[i], true
	}
	var zero T
	return zero, false
}

// faults are the failures a scenario injects: each makes the nth call of
// an operation on one FLB or handler fail.
type faults struct {
	mu   sync.Mutex
	list []*fault
}

type fault struct {
	op, target string
	nth, calls int
	errno      unix.Errno
}

func (fs *faults) add(f *fault) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.list = append(fs.list, f)
}

// trip counts a call and reports the errno if this call must fail.
func (fs *faults) trip(op, target string) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, f := range fs.list {
		if f.op == op && f.target == target {
			f.calls++
			if f.calls == f.nth {
				return fmt.Errorf("injected fault: %s of %s, call %d: %w", op, target, f.calls, f.errno)
			}
		}
	}
	return nil
}

package sim

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/internal/scenario"
)

// TestStepTable_CoversEveryOperation: the step table has one handler for
// each operation of the scenario language, and none it does not define.
func TestStepTable_CoversEveryOperation(t *testing.T) {
	got := slices.Sorted(maps.Keys(stepTable()))
	if want := scenario.Ops(); !slices.Equal(got, want) {
		t.Fatalf("step table has %v,\nscenario operations are %v", got, want)
	}
}

// TestSteps_UnknownOperation: an operation without a handler is a failed
// step, not a panic.
func TestSteps_UnknownOperation(t *testing.T) {
	s := &steps{ops: stepTable(), log: stepLog{source: "x.yaml"}}
	s.run(scenario.Step{Op: "reboot-twice", Line: 7})
	errs := s.log.failures()
	if len(errs) != 1 || !strings.Contains(errs[0], `"reboot-twice"`) || !strings.Contains(errs[0], "(x.yaml:7)") || !strings.Contains(errs[0], "not supported") {
		t.Fatalf("failures %q, want one naming the step, its line and that it is not supported", errs)
	}
}

// TestStepLog_Check: a step passes when it returns what the scenario
// expects, judged by the first errno in the error's chain.
func TestStepLog_Check(t *testing.T) {
	wrapped := fmt.Errorf("register: %w", unix.EEXIST)
	tests := []struct {
		name   string
		expect unix.Errno
		err    error
		want   string // "" when the step passes, else part of its failure
	}{
		{"success expected", 0, nil, ""},
		{"error expected, got it wrapped", unix.EEXIST, wrapped, ""},
		{"error expected, succeeded", unix.EEXIST, nil, "succeeded, want EEXIST"},
		{"success expected, failed", 0, wrapped, "register: file exists"},
		{"other errno", unix.EEXIST, unix.EINVAL, "got invalid argument, want EEXIST"},
		{"no errno at all", unix.EEXIST, errors.New("broken"), "got broken, want EEXIST"},
		{"first errno counts", unix.EBUSY, fmt.Errorf("%w: %w", unix.ENOENT, unix.EBUSY), "want EBUSY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l stepLog
			l.check(scenario.Step{Op: "register-flb", Expect: tt.expect}, tt.err)
			errs := l.failures()
			switch {
			case tt.want == "" && len(errs) != 0:
				t.Fatalf("failures %q, want none", errs)
			case tt.want != "" && (len(errs) != 1 || !strings.Contains(errs[0], tt.want)):
				t.Fatalf("failures %q, want one containing %q", errs, tt.want)
			}
		})
	}
}

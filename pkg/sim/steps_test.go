package sim

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/kho-sim/kho-sim/pkg/scenario"
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

package sim

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kho-sim/kho-sim/internal/kunit"
	"github.com/kho-sim/kho-sim/internal/scenario"
	"github.com/kho-sim/kho-sim/pkg/ktap"
)

// TestKunitParsesEveryScenario feeds the KTAP of every built-in scenario
// (the stream kho-sim sim and kho-sim run print) to the kernel's own
// parser: no errors, no crashed tests, and the same passed, failed and
// skipped test cases as ktap.Parse reads.
func TestKunitParsesEveryScenario(t *testing.T) {
	k := kunit.Require(t)
	all, err := scenario.Builtins()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, sc := range all {
		for _, fix := range []bool{false, true} {
			if fix && sc.Flaw == "" {
				continue // the fix changes nothing without a flaw
			}
			name := fmt.Sprintf("%s/fix=%v", sc.Name, fix)
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				_, log := chain(t, sc, 3, fix)
				p := filepath.Join(dir, strings.ReplaceAll(name, "/", "-")+".log")
				if err := os.WriteFile(p, []byte(log), 0o644); err != nil {
					t.Fatal(err)
				}
				c, err := kunit.Check(k, p)
				if err != nil {
					t.Fatal(err)
				}
				rep, err := ktap.Parse(strings.NewReader(log))
				if err != nil {
					t.Fatal(err)
				}
				if want := kunit.Expect(rep); c.Passed == 0 || want.Passed != c.Passed {
					t.Errorf("kunit.py %v, kho-sim reads %v", c, want)
				}
			})
		}
	}
}

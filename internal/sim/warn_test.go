package sim

import (
	"strconv"
	"strings"
	"testing"

	"github.com/kho-sim/kho-sim/pkg/ktap"
)

// TestKTAP_ShowsEachBootsWARN_ONs: every boot's subtest says how many
// WARN_ONs its kernel printed and lists them. The fixed model warns when a
// file's finish cannot load the incoming count: long-compatible's FLB is
// never found again, so each hop that finishes its two files warns twice.
func TestKTAP_ShowsEachBootsWARN_ONs(t *testing.T) {
	for _, tt := range []struct {
		scenario string
		fix      bool
		want     []int // per boot
	}{
		{"default", false, []int{0, 0, 0}},
		{"long-compatible", false, []int{0, 0, 0}},
		{"long-compatible", true, []int{0, 2, 2}},
	} {
		_, out := chain(t, lookup(t, tt.scenario), len(tt.want), tt.fix)
		rep, err := ktap.Parse(strings.NewReader(out))
		if err != nil || len(rep.Results) != len(tt.want) {
			t.Fatalf("%s: %v\n%s", tt.scenario, err, out)
		}
		for i, res := range rep.Results {
			count, listed := -1, 0
			for _, d := range res.Sub.Diags {
				if n, ok := strings.CutPrefix(d, "kernel WARN_ONs: "); ok {
					if count, err = strconv.Atoi(n); err != nil {
						t.Fatalf("%q: %v", d, err)
					}
				}
				if strings.HasPrefix(d, "WARN_ON in luo_flb_file_finish_one") {
					listed++
				}
			}
			if count != tt.want[i] || listed != tt.want[i] {
				t.Errorf("%s fix=%v boot %d: count %d, %d listed; want %d\n%s", tt.scenario, tt.fix, i+1, count, listed, tt.want[i], out)
			}
		}
	}
}

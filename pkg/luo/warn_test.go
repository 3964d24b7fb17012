package luo

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/pkg/flb"
)

// TestWarnings_FLBWarnOnsAsTheyFire: each WARN_ON pkg/flb reports lands in
// Core.Warnings as an flb.Warning when it fires, is counted by WarnCount, and
// reaches the caller's own Warn hook too.
func TestWarnings_FLBWarnOnsAsTheyFire(t *testing.T) {
	var hooked []flb.Site
	c := New(newTestMem(), Options{FLB: flb.Options{Warn: func(w flb.Warning) { hooked = append(hooked, w.Site) }}})
	w := newWorld()
	h := w.handler("memfd", false)
	noFinish := w.flb("A")
	noFinish.Ops.Finish = nil
	steps := []struct {
		f    *flb.FLB
		site flb.Site
	}{
		{noFinish, flb.WarnMissingOp},
		{w.flb("B"), flb.WarnHandlerNotRegistered}, // h is not registered
	}
	for i, st := range steps {
		if err := c.RegisterFLB(h, st.f); !errors.Is(err, unix.EINVAL) {
			t.Fatalf("RegisterFLB(%s) = %v, want EINVAL", st.f.Compatible, err)
		}
		got := c.Warnings()
		var warning flb.Warning
		if len(got) != i+1 || !errors.As(got[i], &warning) || warning.Site != st.site || warning.FLB != st.f.Compatible {
			t.Fatalf("after RegisterFLB(%s): warnings %v, want %s last", st.f.Compatible, got, st.site)
		}
		if c.WarnCount() != i+1 || len(hooked) != i+1 || hooked[i] != st.site {
			t.Fatalf("WarnCount %d, hook saw %v", c.WarnCount(), hooked)
		}
	}
}

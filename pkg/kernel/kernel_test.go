package kernel

import (
	"errors"
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseList(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []Generation
		err  bool
	}{
		{"7.0", []Generation{V70}, false},
		{"", []Generation{V70}, false},
		{"7.0,7.2", []Generation{V70, V72}, false},
		{"luo-v2, 7.2", []Generation{LUOv2, V72}, false},
		{"7.1", nil, true},
		{"7.2,kho-v4", nil, true},
		{"7.0,", nil, true},
	} {
		got, err := ParseList(tt.in)
		if (err != nil) != tt.err || fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("ParseList(%q) = %v, %v", tt.in, got, err)
		}
		if err != nil && !errors.Is(err, unix.EINVAL) {
			t.Errorf("ParseList(%q): %v, want EINVAL", tt.in, err)
		}
	}
}

// TestDoes: each generation's kernel is named in its own words, and an
// action a generation cannot take speaks of the one that can.
func TestDoes(t *testing.T) {
	for _, tt := range []struct {
		g    Generation
		a    Action
		want string
	}{
		{V70, PanicsAtBoot, "the 7.0 kernel panics at boot (liveupdate_early_init)"},
		{"", PanicsAtBoot, "the 7.0 kernel panics at boot (liveupdate_early_init)"},
		{LUOv2, UsesBadAddress, "a luo-v2 kernel dereferences the address with phys_to_virt unchecked"},
		{V72, LosesFLBState, "the 7.2 kernel does not find the FLB (ENOENT) and its state is lost"},
		{V70, StopsAtFile, "the 7.0 kernel's strcmp runs past the entry; the files after it are not restored"},
		{V70, IgnoresMetadata, "the 7.2 kernel warns and ignores the kexec-metadata (kexec_count restarts at 1)"},
		{V72, NoAction, ""},
	} {
		if got := tt.g.Does(tt.a); got != tt.want {
			t.Errorf("%q.Does(%d) = %q, want %q", tt.g, tt.a, got, tt.want)
		}
	}
	f := V72.Find("FLB table", ReadsPastPage, "count %d", 64)
	if f.Error() != "count 64; the 7.2 kernel reads past the FLB page" || f.String() != "FLB table: "+f.Error() || f.Action != ReadsPastPage {
		t.Errorf("finding %+v: %q / %q", f, f.Error(), f.String())
	}
	if f := V70.Find("sessions", NoAction, "x"); f.Error() != "x" || f.Kernel != "" {
		t.Errorf("finding without action %+v", f)
	}
}

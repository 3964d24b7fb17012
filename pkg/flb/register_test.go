package flb

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestRegisterFLB_Disabled_EOPNOTSUPP(t *testing.T) {
	tf := newTestFLB()
	k := New(Options{Disabled: true})
	h, f := registeredHandler(), tf.flb("a", nil)
	if err := k.RegisterFLB(h, f); !errors.Is(err, unix.EOPNOTSUPP) {
		t.Errorf("RegisterFLB = %v, want EOPNOTSUPP", err)
	}
	if err := k.UnregisterFLB(h, f); !errors.Is(err, unix.EOPNOTSUPP) {
		t.Errorf("UnregisterFLB = %v, want EOPNOTSUPP", err)
	}
	if _, err := k.GetIncoming(f); !errors.Is(err, unix.EOPNOTSUPP) {
		t.Errorf("GetIncoming = %v, want EOPNOTSUPP", err)
	}
	if _, err := k.GetOutgoing(f); !errors.Is(err, unix.EOPNOTSUPP) {
		t.Errorf("GetOutgoing = %v, want EOPNOTSUPP", err)
	}
}

// TestRegisterFLB_MissingOp_WARN_ON_EINVAL: liveupdate_register_flb
// WARNs and returns EINVAL for an FLB without one of its four ops.
func TestRegisterFLB_MissingOp_WARN_ON_EINVAL(t *testing.T) {
	tests := []struct {
		name string
		drop func(*Ops)
	}{
		{"preserve", func(o *Ops) { o.Preserve = nil }},
		{"unpreserve", func(o *Ops) { o.Unpreserve = nil }},
		{"retrieve", func(o *Ops) { o.Retrieve = nil }},
		{"finish", func(o *Ops) { o.Finish = nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts, tf := warnOptions(Options{})
			k := New(opts)
			f := tf.flb("a", nil)
			tt.drop(f.Ops)
			if err := k.RegisterFLB(registeredHandler(), f); !errors.Is(err, unix.EINVAL) {
				t.Fatalf("RegisterFLB = %v, want EINVAL", err)
			}
			tf.rec.Expect(t, "WARN "+string(WarnMissingOp)+" a EINVAL")
			if len(k.Registered()) != 0 || k.WarnCount() != 1 {
				t.Fatalf("registered %d, WarnCount %d; want 0, 1", len(k.Registered()), k.WarnCount())
			}
		})
	}
}

// TestRegisterFLB_HandlerNotRegistered_WARN_ON_EINVAL: liveupdate_register_flb
// WARNs and returns EINVAL for a file handler that is not registered.
func TestRegisterFLB_HandlerNotRegistered_WARN_ON_EINVAL(t *testing.T) {
	opts, tf := warnOptions(Options{})
	k := New(opts)
	never := &FileHandler{}
	if err := k.RegisterFLB(never, tf.flb("a", nil)); !errors.Is(err, unix.EINVAL) {
		t.Errorf("never registered: RegisterFLB = %v, want EINVAL", err)
	}
	gone := registeredHandler()
	gone.MarkUnregistered()
	if err := k.RegisterFLB(gone, tf.flb("b", nil)); !errors.Is(err, unix.EINVAL) {
		t.Errorf("unregistered: RegisterFLB = %v, want EINVAL", err)
	}
	w := "WARN " + string(WarnHandlerNotRegistered)
	tf.rec.Expect(t, w+" a EINVAL", w+" b EINVAL")
	if k.WarnCount() != 2 {
		t.Errorf("WarnCount = %d, want 2", k.WarnCount())
	}
}

// TestRegisterFLB_ListedWithoutUsers_WARN_ON_EINVAL: on an FLB's first link
// liveupdate_register_flb WARNs and returns EINVAL if the FLB is still on
// the global list. The API never leaves that state (unregister takes the
// FLB off with its last user); the test sets it.
func TestRegisterFLB_ListedWithoutUsers_WARN_ON_EINVAL(t *testing.T) {
	opts, tf := warnOptions(Options{})
	k := New(opts)
	f := tf.flb("a", nil)
	f.listed = true
	h := registeredHandler()
	if err := k.RegisterFLB(h, f); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("RegisterFLB = %v, want EINVAL", err)
	}
	tf.rec.Expect(t, "WARN "+string(WarnListedWithoutUsers)+" a EINVAL")
	if len(h.FLBs()) != 0 || f.users != 0 || k.WarnCount() != 1 {
		t.Fatalf("links %d, users %d, WarnCount %d; want 0, 0, 1", len(h.FLBs()), f.users, k.WarnCount())
	}
}

// TestRegisterFLB_NilOps_Oops: the kernel reads flb->ops->preserve through
// a NULL ops before any WARN_ON can print.
func TestRegisterFLB_NilOps_Oops(t *testing.T) {
	k := New(Options{})
	if err := k.RegisterFLB(registeredHandler(), &FLB{Compatible: "a"}); !errors.Is(err, ErrOops) {
		t.Fatalf("RegisterFLB = %v, want ErrOops", err)
	}
	if k.WarnCount() != 0 {
		t.Fatalf("WarnCount = %d, want 0", k.WarnCount())
	}
}

// TestRegisterFLB_NoWarnOnOtherErrors: EBUSY, EEXIST, ENOENT and EAGAIN are
// returned without a WARN_ON.
func TestRegisterFLB_NoWarnOnOtherErrors(t *testing.T) {
	q := &fakeQuiescer{}
	opts, tf := warnOptions(Options{Quiescer: q})
	k := New(opts)
	h, f := registeredHandler(), tf.flb("a", nil)
	mod := &Module{}
	mod.BeginUnload()
	steps := []struct {
		name string
		call func() error
		want error
	}{
		{"sessions exist", func() error { return k.RegisterFLB(h, f) }, unix.EBUSY},
		{"first link", func() error { q.ok = true; return k.RegisterFLB(h, f) }, nil},
		{"same link", func() error { return k.RegisterFLB(h, f) }, unix.EEXIST},
		{"same compatible", func() error { return k.RegisterFLB(registeredHandler(), tf.flb("a", nil)) }, unix.EEXIST},
		{"not linked", func() error { return k.UnregisterFLB(registeredHandler(), f) }, unix.ENOENT},
		{"module going", func() error { return k.RegisterFLB(h, tf.flb("b", mod)) }, unix.EAGAIN},
	}
	for _, st := range steps {
		if err := st.call(); !errors.Is(err, st.want) || (st.want == nil) != (err == nil) {
			t.Fatalf("%s: %v, want %v", st.name, err, st.want)
		}
	}
	if k.WarnCount() != 0 {
		t.Fatalf("WarnCount = %d: %q", k.WarnCount(), tf.rec.Take())
	}
}

func TestRegisterFLB_CompatibleLongerThan48_EINVAL(t *testing.T) {
	k := New(Options{})
	f := newTestFLB().flb(strings.Repeat("x", NameLen+1), nil)
	if err := k.RegisterFLB(registeredHandler(), f); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("RegisterFLB = %v, want EINVAL", err)
	}
}

func TestRegisterFLB_NotQuiescent_EBUSY(t *testing.T) {
	q := &fakeQuiescer{ok: false}
	k := New(Options{Quiescer: q})
	h, f := registeredHandler(), newTestFLB().flb("a", nil)
	if err := k.RegisterFLB(h, f); !errors.Is(err, unix.EBUSY) {
		t.Fatalf("RegisterFLB = %v, want EBUSY", err)
	}
	if err := k.UnregisterFLB(h, f); !errors.Is(err, unix.EBUSY) {
		t.Fatalf("UnregisterFLB = %v, want EBUSY", err)
	}
	if q.quiesce != 2 || q.resume != 0 {
		t.Fatalf("quiesce/resume = %d/%d, want 2/0 (a failed quiesce holds nothing)", q.quiesce, q.resume)
	}
	q.ok = true
	if err := k.RegisterFLB(h, f); err != nil {
		t.Fatal(err)
	}
	if err := k.RegisterFLB(h, f); !errors.Is(err, unix.EEXIST) {
		t.Fatal(err)
	}
	if q.quiesce != 4 || q.resume != 2 {
		t.Fatalf("quiesce/resume = %d/%d, want 4/2 (resume after success and error)", q.quiesce, q.resume)
	}
}

func TestRegisterFLB_DuplicateLink_EEXIST(t *testing.T) {
	k := New(Options{})
	h, f := registeredHandler(), newTestFLB().flb("a", nil)
	mustRegister(t, k, h, f)
	if err := k.RegisterFLB(h, f); !errors.Is(err, unix.EEXIST) {
		t.Fatalf("RegisterFLB = %v, want EEXIST", err)
	}
	if s := f.State(); s.Users != 1 || len(h.FLBs()) != 1 {
		t.Fatalf("users=%d links=%d, want 1/1", s.Users, len(h.FLBs()))
	}
}

func TestRegisterFLB_DuplicateCompatible_EEXIST(t *testing.T) {
	k := New(Options{})
	tf := newTestFLB()
	mod := &Module{Name: "m"}
	mustRegister(t, k, registeredHandler(), tf.flb("iommu-core-v1", nil))
	dup := tf.flb("iommu-core-v1", mod)
	if err := k.RegisterFLB(registeredHandler(), dup); !errors.Is(err, unix.EEXIST) {
		t.Fatalf("RegisterFLB = %v, want EEXIST", err)
	}
	if mod.Refs() != 0 {
		t.Fatal("module reference taken by a failed registration")
	}
	// strcmp stops at the NUL: an embedded NUL makes the names equal.
	if err := k.RegisterFLB(registeredHandler(), tf.flb("iommu-core-v1\x00junk", nil)); !errors.Is(err, unix.EEXIST) {
		t.Fatalf("name with NUL: RegisterFLB = %v, want EEXIST", err)
	}
}

func TestRegisterFLB_48ByteCompatible_NeverEqual(t *testing.T) {
	// A 48-byte compatible has no NUL: strcmp runs past it into the FLB's
	// private list pointers, so no name ever equals it, not even itself.
	k := New(Options{})
	tf := newTestFLB()
	long := strings.Repeat("c", NameLen)
	mustRegister(t, k, registeredHandler(), tf.flb(long, nil))
	mustRegister(t, k, registeredHandler(), tf.flb(long, nil))
	mustRegister(t, k, registeredHandler(), tf.flb(long[:NameLen-1], nil))
	if n := len(k.Registered()); n != 3 {
		t.Fatalf("registered %d, want 3", n)
	}
}

func TestRegisterFLB_64th_ENOSPC(t *testing.T) {
	k := New(Options{})
	tf := newTestFLB()
	h := registeredHandler()
	for i := range Max {
		mustRegister(t, k, h, tf.flb(fmt.Sprintf("flb-%d", i), nil))
	}
	extra := tf.flb("flb-63", nil)
	if err := k.RegisterFLB(h, extra); !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("64th RegisterFLB = %v, want ENOSPC", err)
	}
	// ENOSPC comes before the duplicate check, as in the kernel.
	if err := k.RegisterFLB(h, tf.flb("flb-0", nil)); !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("64th duplicate RegisterFLB = %v, want ENOSPC", err)
	}
	// A second link of a registered FLB does not take a slot.
	if err := k.RegisterFLB(registeredHandler(), k.Registered()[0]); err != nil {
		t.Fatalf("second link at Max: %v", err)
	}
	if err := k.UnregisterFLB(h, k.Registered()[1]); err != nil {
		t.Fatal(err)
	}
	if err := k.RegisterFLB(h, extra); err != nil {
		t.Fatalf("after a slot freed: %v", err)
	}
}

func TestRegisterFLB_OwnerGoing_EAGAIN(t *testing.T) {
	k := New(Options{})
	mod := &Module{Name: "iommu"}
	mod.BeginUnload()
	if err := k.RegisterFLB(registeredHandler(), newTestFLB().flb("a", mod)); !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("RegisterFLB = %v, want EAGAIN", err)
	}
	if len(k.Registered()) != 0 {
		t.Fatal("registered despite EAGAIN")
	}
}

func TestRegisterFLB_ModuleRefOncePerFLB(t *testing.T) {
	k := New(Options{})
	mod := &Module{Name: "iommu"}
	f := newTestFLB().flb("a", mod)
	h1, h2 := registeredHandler(), registeredHandler()
	mustRegister(t, k, h1, f)
	mustRegister(t, k, h2, f)
	if mod.Refs() != 1 || f.State().Users != 2 {
		t.Fatalf("refs=%d users=%d, want 1/2", mod.Refs(), f.State().Users)
	}
	if err := k.UnregisterFLB(h1, f); err != nil {
		t.Fatal(err)
	}
	if mod.Refs() != 1 || !f.State().Registered {
		t.Fatal("first unregister released the global registration")
	}
	if err := k.UnregisterFLB(h2, f); err != nil {
		t.Fatal(err)
	}
	if mod.Refs() != 0 || f.State().Registered || len(k.Registered()) != 0 {
		t.Fatalf("after last unregister: refs=%d state=%+v", mod.Refs(), f.State())
	}
}

func TestRegisterFLB_KeepsRegistrationOrder(t *testing.T) {
	k := New(Options{})
	tf := newTestFLB()
	h1, h2 := registeredHandler(), registeredHandler()
	a, b, c := tf.flb("a", nil), tf.flb("b", nil), tf.flb("c", nil)
	mustRegister(t, k, h1, b, a)
	mustRegister(t, k, h2, c, b)
	var names []string
	for _, f := range k.Registered() {
		names = append(names, f.Compatible)
	}
	if !slices.Equal(names, []string{"b", "a", "c"}) {
		t.Fatalf("global order %v, want [b a c]", names)
	}
	if got := h2.FLBs(); len(got) != 2 || got[0] != c || got[1] != b {
		t.Fatal("handler list not in link order")
	}
}

func TestRegisterFLB_OtherBoot_EINVAL(t *testing.T) {
	f := newTestFLB().flb("a", nil)
	mustRegister(t, New(Options{}), registeredHandler(), f)
	if err := New(Options{}).RegisterFLB(registeredHandler(), f); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("RegisterFLB on a second Kernel = %v, want EINVAL", err)
	}
}

func TestUnregisterFLB_NotLinked_ENOENT(t *testing.T) {
	k := New(Options{})
	f := newTestFLB().flb("a", nil)
	h1, h2 := registeredHandler(), registeredHandler()
	mustRegister(t, k, h1, f)
	if err := k.UnregisterFLB(h2, f); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("UnregisterFLB = %v, want ENOENT", err)
	}
	if f.State().Users != 1 {
		t.Fatal("failed unregister changed users")
	}
}

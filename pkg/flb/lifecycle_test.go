package flb

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// outgoingSetup registers FLBs a, b, c, d on one handler.
func outgoingSetup(t *testing.T) (*Kernel, *testFLB, *FileHandler, []*FLB) {
	t.Helper()
	k := New(Options{})
	tf := newTestFLB()
	h := registeredHandler()
	flbs := []*FLB{tf.flb("a", nil), tf.flb("b", nil), tf.flb("c", nil), tf.flb("d", nil)}
	mustRegister(t, k, h, flbs...)
	return k, tf, h, flbs
}

func TestFilePreserve_FirstFileCallsPreserve_LaterFilesOnlyCount(t *testing.T) {
	k, tf, h, flbs := outgoingSetup(t)
	for range 3 {
		if err := k.FilePreserve(h); err != nil {
			t.Fatal(err)
		}
	}
	tf.rec.Expect(t, "preserve a", "preserve b", "preserve c", "preserve d")
	s := flbs[1].State()
	if s.OutgoingCount != 3 || s.OutgoingData != dataFor("b") || s.OutgoingObj != "out:b" {
		t.Fatalf("state %+v", s)
	}
	if obj, err := k.GetOutgoing(flbs[1]); err != nil || obj != "out:b" {
		t.Fatalf("GetOutgoing = %v, %v", obj, err)
	}
}

func TestFilePreserve_FailureRollsBackInReverse(t *testing.T) {
	tests := []struct {
		name      string
		aHeld     bool // a already preserved by a file of another handler
		want      []string
		wantCount []int64
	}{
		{"fresh", false,
			[]string{"preserve a", "preserve b", "preserve c", fmtUnpreserve("b"), fmtUnpreserve("a")},
			[]int64{0, 0, 0, 0}},
		{"a held elsewhere only drops this reference", true,
			[]string{"preserve b", "preserve c", fmtUnpreserve("b")},
			[]int64{1, 0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, tf, h, flbs := outgoingSetup(t)
			if tt.aHeld {
				other := registeredHandler()
				mustRegister(t, k, other, flbs[0])
				if err := k.FilePreserve(other); err != nil {
					t.Fatal(err)
				}
				tf.rec.Take()
			}
			tf.failPreserve["c"] = unix.ENOMEM
			if err := k.FilePreserve(h); !errors.Is(err, unix.ENOMEM) {
				t.Fatalf("FilePreserve = %v, want ENOMEM", err)
			}
			tf.rec.Expect(t, tt.want...)
			for i, want := range tt.wantCount {
				if got := flbs[i].State().OutgoingCount; got != want {
					t.Errorf("%s count %d, want %d", flbs[i].Compatible, got, want)
				}
			}
		})
	}
}

func fmtUnpreserve(name string) string {
	return "unpreserve " + name + " data=" + hex(dataFor(name)) + " obj=out:" + name
}

func hex(v uint64) string { return fmt.Sprintf("%#x", v) }

func TestFilePreserve_FirstFLBFails_NothingToRollBack(t *testing.T) {
	k, tf, h, _ := outgoingSetup(t)
	tf.failPreserve["a"] = unix.EIO
	if err := k.FilePreserve(h); !errors.Is(err, unix.EIO) {
		t.Fatalf("FilePreserve = %v, want EIO", err)
	}
	tf.rec.Expect(t, "preserve a")
}

func TestFileUnpreserve_ReverseOrder_LastFileCallsUnpreserve(t *testing.T) {
	k, tf, h, flbs := outgoingSetup(t)
	for range 2 {
		if err := k.FilePreserve(h); err != nil {
			t.Fatal(err)
		}
	}
	tf.rec.Take()
	k.FileUnpreserve(h)
	tf.rec.Expect(t) // not the last file yet
	k.FileUnpreserve(h)
	tf.rec.Expect(t, fmtUnpreserve("d"), fmtUnpreserve("c"), fmtUnpreserve("b"), fmtUnpreserve("a"))
	for _, f := range flbs {
		if s := f.State(); s.OutgoingCount != 0 || s.OutgoingData != 0 || s.OutgoingObj != nil {
			t.Errorf("%s not cleared: %+v", f.Compatible, s)
		}
	}
	// Preserve again after a full unpreserve calls .preserve again.
	if err := k.FilePreserve(h); err != nil {
		t.Fatal(err)
	}
	tf.rec.Expect(t, "preserve a", "preserve b", "preserve c", "preserve d")
}

func TestGetOutgoing_BeforePreserve_Nil(t *testing.T) {
	k, _, _, flbs := outgoingSetup(t)
	if obj, err := k.GetOutgoing(flbs[0]); err != nil || obj != nil {
		t.Fatalf("GetOutgoing = %v, %v; want nil, nil", obj, err)
	}
}

// incomingSetup registers a, b, c on one handler and installs an incoming
// page holding the given entries.
func incomingSetup(t *testing.T, opts Options, page []byte) (*Kernel, *testFLB, *FileHandler, []*FLB) {
	t.Helper()
	return incomingSetupWith(t, opts, newTestFLB(), page)
}

// abcPage holds a, b, c, each with count files.
func abcPage(count uint64) []byte {
	return makePage(3,
		pageEntry{"a", dataFor("a"), count},
		pageEntry{"b", dataFor("b"), count},
		pageEntry{"c", dataFor("c"), count})
}

func TestGetIncoming_RetrievesAtMostOnce(t *testing.T) {
	k, tf, _, flbs := incomingSetup(t, Options{}, abcPage(2))
	for range 3 {
		obj, err := k.GetIncoming(flbs[1])
		if err != nil || obj != "in:b" {
			t.Fatalf("GetIncoming = %v, %v", obj, err)
		}
	}
	tf.rec.Expect(t, "retrieve b data="+hex(dataFor("b")))
	if s := flbs[1].State(); !s.Retrieved || s.IncomingCount != 2 || s.IncomingData != dataFor("b") {
		t.Fatalf("state %+v", s)
	}
}

func TestGetIncoming_RetrieveReturnsNilObj_RetrieveStillOnce(t *testing.T) {
	k, tf, _, flbs := incomingSetup(t, Options{}, abcPage(1))
	tf.nilObj = true
	for range 2 {
		if obj, err := k.GetIncoming(flbs[0]); err != nil || obj != nil {
			t.Fatalf("GetIncoming = %v, %v", obj, err)
		}
	}
	tf.rec.Expect(t, "retrieve a data="+hex(dataFor("a")))
}

func TestGetIncoming_NoIncomingData_ENODATA(t *testing.T) {
	k, tf, _, flbs := incomingSetup(t, Options{}, nil)
	if _, err := k.GetIncoming(flbs[0]); !errors.Is(err, unix.ENODATA) {
		t.Fatalf("GetIncoming = %v, want ENODATA", err)
	}
	tf.rec.Expect(t)
}

func TestGetIncoming_NotInTable_ENOENT(t *testing.T) {
	k, tf, _, _ := incomingSetup(t, Options{}, abcPage(1))
	d := tf.flb("d", nil)
	if _, err := k.GetIncoming(d); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("GetIncoming = %v, want ENOENT", err)
	}
	// Entries past the header count are not looked at.
	k2, _, _, flbs := incomingSetup(t, Options{}, makePage(1, pageEntry{"x", 1, 1}, pageEntry{"a", 2, 1}))
	if _, err := k2.GetIncoming(flbs[0]); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("entry past count: GetIncoming = %v, want ENOENT", err)
	}
}

func TestGetIncoming_RetrieveError_PropagatesAndStaysUnretrieved(t *testing.T) {
	k, tf, _, flbs := incomingSetup(t, Options{}, abcPage(4))
	tf.failRetrieve["a"] = unix.EIO
	if _, err := k.GetIncoming(flbs[0]); !errors.Is(err, unix.EIO) {
		t.Fatalf("GetIncoming = %v, want EIO", err)
	}
	s := flbs[0].State()
	if s.Retrieved || s.IncomingCount != 4 || s.IncomingData != dataFor("a") {
		t.Fatalf("after failed retrieve: %+v (7.0 loads data and count before .retrieve)", s)
	}
	delete(tf.failRetrieve, "a")
	if obj, err := k.GetIncoming(flbs[0]); err != nil || obj != "in:a" {
		t.Fatalf("second GetIncoming = %v, %v", obj, err)
	}
	tf.rec.Expect(t, "retrieve a data="+hex(dataFor("a")), "retrieve a data="+hex(dataFor("a")))
}

func TestFileFinish_AfterRetrieve_LastFileFinishesInReverse(t *testing.T) {
	k, tf, h, flbs := incomingSetup(t, Options{}, abcPage(2))
	for _, f := range flbs {
		if _, err := k.GetIncoming(f); err != nil {
			t.Fatal(err)
		}
	}
	tf.rec.Take()
	if err := k.FileFinish(h); err != nil {
		t.Fatal(err)
	}
	tf.rec.Expect(t)
	if err := k.FileFinish(h); err != nil {
		t.Fatal(err)
	}
	tf.rec.Expect(t, "finish c obj=in:c", "finish b obj=in:b", "finish a obj=in:a")
	for _, f := range flbs {
		s := f.State()
		if !s.Finished || s.IncomingCount != 0 || s.IncomingObj != nil || s.IncomingData != 0 {
			t.Errorf("%s: %+v", f.Compatible, s)
		}
		if _, err := k.GetIncoming(f); !errors.Is(err, unix.ENODATA) {
			t.Errorf("%s: GetIncoming after finish = %v, want ENODATA", f.Compatible, err)
		}
	}
}

func TestFinishBeforeRetrieve_CountUnderflows_NeverFinishes(t *testing.T) {
	k, tf, h, flbs := incomingSetup(t, Options{}, abcPage(2))
	for range 2 {
		if err := k.FileFinish(h); err != nil {
			t.Fatal(err)
		}
	}
	tf.rec.Expect(t) // neither .retrieve nor .finish ran
	for _, f := range flbs {
		if s := f.State(); s.IncomingCount != -2 || s.Finished || s.Retrieved {
			t.Fatalf("%s: %+v, want count -2, never finished", f.Compatible, s)
		}
	}
	// A late get_incoming reloads the count from the page: the two
	// decrements are lost and two more finishes would be needed.
	if _, err := k.GetIncoming(flbs[0]); err != nil {
		t.Fatal(err)
	}
	if c := flbs[0].State().IncomingCount; c != 2 {
		t.Fatalf("count after late retrieve %d, want 2 (reloaded)", c)
	}
}

func TestFinishBeforeRetrieve_Fixed_FinishesOnce(t *testing.T) {
	k, tf, h, flbs := incomingSetup(t, Options{FixFinishBeforeRetrieve: true}, abcPage(2))
	if err := k.FileFinish(h); err != nil {
		t.Fatal(err)
	}
	tf.rec.Expect(t)
	if err := k.FileFinish(h); err != nil {
		t.Fatal(err)
	}
	tf.rec.Expect(t,
		"retrieve c data="+hex(dataFor("c")), "finish c obj=in:c",
		"retrieve b data="+hex(dataFor("b")), "finish b obj=in:b",
		"retrieve a data="+hex(dataFor("a")), "finish a obj=in:a")
	if err := k.FileFinish(h); err != nil {
		t.Fatal(err)
	}
	tf.rec.Expect(t) // finish ran once
	for _, f := range flbs {
		if !f.State().Finished {
			t.Errorf("%s not finished", f.Compatible)
		}
	}
}

func TestGetIncomingAfterFinish_ReloadsCount_LosesDecrements(t *testing.T) {
	tests := []struct {
		name      string
		fix       bool
		wantCount int64
	}{
		{"7.0", false, 3},
		{"fixed", true, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, _, h, flbs := incomingSetup(t, Options{FixFinishBeforeRetrieve: tt.fix}, abcPage(3))
			if err := k.FileFinish(h); err != nil {
				t.Fatal(err)
			}
			if _, err := k.GetIncoming(flbs[0]); err != nil {
				t.Fatal(err)
			}
			if c := flbs[0].State().IncomingCount; c != tt.wantCount {
				t.Fatalf("count %d, want %d", c, tt.wantCount)
			}
		})
	}
}

func TestFinishFixed_NotInTable_WarnsNoDecrement(t *testing.T) {
	opts, tf := warnOptions(Options{FixFinishBeforeRetrieve: true})
	k, _, h, flbs := incomingSetupWith(t, opts, tf, makePage(1, pageEntry{"a", 1, 1}))
	if err := k.FileFinish(h); err != nil {
		t.Fatal(err)
	}
	tf.rec.Expect(t,
		"WARN "+string(WarnFixedFinishCount)+" c ENOENT",
		"WARN "+string(WarnFixedFinishCount)+" b ENOENT",
		"retrieve a data=0x1", "finish a obj=in:a")
	if s := flbs[1].State(); s.IncomingCount != 0 {
		t.Fatalf("b count %d, want 0 (not decremented)", s.IncomingCount)
	}
	if k.WarnCount() != 2 {
		t.Fatalf("WarnCount = %d, want 2", k.WarnCount())
	}
}

// TestFileFinish_RetrieveFailsAtLastFile_WARN_ON_err: luo_flb_file_finish_one
// retrieves an FLB not yet retrieved when its last file finishes; if that
// fails, WARN_ON(err) fires right then and .finish is skipped, while the
// walk goes on to the next FLB. In 7.0 the count is loaded only by a
// retrieve, so the path needs a get_incoming whose .retrieve failed first.
func TestFileFinish_RetrieveFailsAtLastFile_WARN_ON_err(t *testing.T) {
	for _, fix := range []bool{false, true} {
		t.Run(fmt.Sprintf("fix=%v", fix), func(t *testing.T) {
			opts, tf := warnOptions(Options{FixFinishBeforeRetrieve: fix})
			k, _, h, flbs := incomingSetupWith(t, opts, tf, abcPage(1))
			tf.failRetrieve["b"] = unix.EIO
			if !fix {
				for _, f := range flbs {
					_, err := k.GetIncoming(f)
					if want := f.Compatible == "b"; errors.Is(err, unix.EIO) != want {
						t.Fatalf("GetIncoming(%s) = %v", f.Compatible, err)
					}
				}
				tf.rec.Take()
			}
			if err := k.FileFinish(h); err != nil {
				t.Fatal(err)
			}
			want := []string{"retrieve c data=" + hex(dataFor("c")), "finish c obj=in:c",
				"retrieve b data=" + hex(dataFor("b")), "WARN " + string(WarnFinishRetrieve) + " b EIO",
				"retrieve a data=" + hex(dataFor("a")), "finish a obj=in:a"}
			if !fix { // c and a were retrieved by get_incoming
				want = []string{"finish c obj=in:c", want[2], want[3], "finish a obj=in:a"}
			}
			tf.rec.Expect(t, want...)
			// 7.0's retrieve in finish reloads the count from the page
			// before its .retrieve fails; the fix keeps the count.
			wantCount := int64(0)
			if !fix {
				wantCount = 1
			}
			if s := flbs[1].State(); s.Finished || s.IncomingCount != wantCount {
				t.Fatalf("b: %+v, want count %d, not finished", s, wantCount)
			}
			if k.WarnCount() != 1 {
				t.Fatalf("WarnCount = %d, want 1", k.WarnCount())
			}
		})
	}
}

// TestFileFinish_NoWarnOnTheGoodPath: a retrieve, then every file finished:
// no WARN_ON fires.
func TestFileFinish_NoWarnOnTheGoodPath(t *testing.T) {
	opts, tf := warnOptions(Options{})
	k, _, h, flbs := incomingSetupWith(t, opts, tf, abcPage(2))
	for _, f := range flbs {
		if _, err := k.GetIncoming(f); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 { // one more finish than files: the count goes below 0
		if err := k.FileFinish(h); err != nil {
			t.Fatal(err)
		}
	}
	if k.WarnCount() != 0 || slices.ContainsFunc(tf.rec.Take(), func(e string) bool { return strings.HasPrefix(e, "WARN") }) {
		t.Fatalf("WarnCount = %d on the good path", k.WarnCount())
	}
}

// TestGetIncoming_NoRetrieveOp_KernelErrnos_ThenNULLCallOops:
// liveupdate_flb_get_incoming checks no op. An FLB without .retrieve (never
// registered: registration WARNs and refuses it) gets ENODATA without
// incoming data or once finished, ENOENT when not in the table, and when its
// entry is found the kernel calls the NULL .retrieve: an oops, with
// data and count already loaded and incoming.lock never released.
func TestGetIncoming_NoRetrieveOp_KernelErrnos_ThenNULLCallOops(t *testing.T) {
	noRetrieve := func(tf *testFLB, name string) *FLB {
		f := tf.flb(name, nil)
		f.Ops.Retrieve = nil
		return f
	}
	k, tf, h, _ := incomingSetup(t, Options{}, nil)
	if _, err := k.GetIncoming(noRetrieve(tf, "a")); !errors.Is(err, unix.ENODATA) {
		t.Errorf("no incoming data: GetIncoming = %v, want ENODATA", err)
	}
	k, tf, h, flbs := incomingSetup(t, Options{}, abcPage(1))
	if _, err := k.GetIncoming(noRetrieve(tf, "d")); !errors.Is(err, unix.ENOENT) {
		t.Errorf("not in the table: GetIncoming = %v, want ENOENT", err)
	}
	b := noRetrieve(tf, "b")
	_, err := k.GetIncoming(b)
	if !errors.Is(err, ErrOops) || errors.Is(err, unix.EINVAL) {
		t.Fatalf("entry found: GetIncoming = %v, want ErrOops", err)
	}
	if s := b.State(); s.IncomingData != dataFor("b") || s.IncomingCount != 1 || s.Retrieved {
		t.Errorf("state after the oops %+v: data and count are loaded before the call", s)
	}
	if _, err := k.GetIncoming(b); !errors.Is(err, ErrDeadlock) {
		t.Errorf("after the oops: GetIncoming = %v, want ErrDeadlock", err)
	}
	// Finished: ENODATA comes before the table is read.
	if _, err := k.GetIncoming(flbs[0]); err != nil {
		t.Fatal(err)
	}
	if err := k.FileFinish(h); err != nil {
		t.Fatal(err)
	}
	flbs[0].Ops.Retrieve = nil
	if _, err := k.GetIncoming(flbs[0]); !errors.Is(err, unix.ENODATA) {
		t.Errorf("finished: GetIncoming = %v, want ENODATA", err)
	}
	if k.WarnCount() != 0 {
		t.Errorf("WarnCount = %d: get_incoming has no WARN_ON", k.WarnCount())
	}
}

// TestFileFinish_NULLRetrieveAtLastFile_Oops: an op cleared after
// registration is called through NULL when the last file finishes; the
// kernel's task dies there, so no WARN_ON and no later FLB is finished.
func TestFileFinish_NULLRetrieveAtLastFile_Oops(t *testing.T) {
	opts, tf := warnOptions(Options{FixFinishBeforeRetrieve: true})
	k, _, h, flbs := incomingSetupWith(t, opts, tf, abcPage(1))
	flbs[1].Ops.Retrieve = nil
	if err := k.FileFinish(h); !errors.Is(err, ErrOops) {
		t.Fatalf("FileFinish = %v, want ErrOops", err)
	}
	tf.rec.Expect(t, "retrieve c data="+hex(dataFor("c")), "finish c obj=in:c")
	if k.WarnCount() != 0 {
		t.Fatalf("WarnCount = %d, want 0", k.WarnCount())
	}
}

func TestRetrieve_HeaderCountAbovePage_ReadPastPage(t *testing.T) {
	k, _, _, flbs := incomingSetup(t, Options{}, makePage(1000, pageEntry{"x", 1, 1}))
	_, err := k.GetIncoming(flbs[0])
	if !errors.Is(err, ErrReadPastPage) {
		t.Fatalf("GetIncoming = %v, want ErrReadPastPage", err)
	}
	if errors.Is(err, unix.ENOENT) {
		t.Fatal("read past page must be distinguishable from ENOENT")
	}
}

func TestRetrieve_HeaderCountAboveMax_MatchInsidePage_Found(t *testing.T) {
	// 7.0 stops at the first match, so a corrupt count goes unnoticed.
	k, _, _, flbs := incomingSetup(t, Options{}, makePage(1<<40, pageEntry{"a", 7, 1}))
	if _, err := k.GetIncoming(flbs[0]); err != nil {
		t.Fatal(err)
	}
	if s := flbs[0].State(); s.IncomingData != 7 {
		t.Fatalf("data %d, want 7", s.IncomingData)
	}
}

func TestRetrieve_MatchAtEntry63_DataPastPage(t *testing.T) {
	// Entry 63 starts at byte 4048: its name fits, its data and count lie
	// past the page.
	entries := make([]pageEntry, Max+1)
	for i := range entries {
		entries[i] = pageEntry{name: "z"}
	}
	entries[Max] = pageEntry{name: "a"}
	k, _, _, flbs := incomingSetup(t, Options{}, makePage(Max+1, entries...))
	if _, err := k.GetIncoming(flbs[0]); !errors.Is(err, ErrReadPastPage) {
		t.Fatalf("GetIncoming = %v, want ErrReadPastPage", err)
	}
}

func TestRetrieve_UnterminatedName_StrcmpStopsAtDifference(t *testing.T) {
	full := strings.Repeat("n", NameLen) // no NUL in the page entry
	tests := []struct {
		name    string
		compat  string
		wantErr error
	}{
		{"shorter compatible differs at its NUL", full[:NameLen-1], unix.ENOENT},
		{"48-byte compatible runs past its array", full, unix.ENOENT},
		{"other name", "a", unix.ENOENT},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := New(Options{})
			f := newTestFLB().flb(tt.compat, nil)
			mustRegister(t, k, registeredHandler(), f)
			if err := k.SetupIncoming(makePage(1, pageEntry{full, 1, 1})); err != nil {
				t.Fatal(err)
			}
			if _, err := k.GetIncoming(f); !errors.Is(err, tt.wantErr) {
				t.Fatalf("GetIncoming = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestRetrieve_UnterminatedLastName_ReadPastPage(t *testing.T) {
	// A 48-byte compatible compared with a 48-byte name in entry 63 reads
	// byte 4096 before finding the difference.
	full := strings.Repeat("n", NameLen)
	entries := make([]pageEntry, Max+1)
	for i := range entries {
		entries[i] = pageEntry{name: "z"}
	}
	entries[Max] = pageEntry{name: full}
	k := New(Options{})
	f := newTestFLB().flb(full, nil)
	mustRegister(t, k, registeredHandler(), f)
	if err := k.SetupIncoming(makePage(Max+1, entries...)); err != nil {
		t.Fatal(err)
	}
	if _, err := k.GetIncoming(f); !errors.Is(err, ErrReadPastPage) {
		t.Fatalf("GetIncoming = %v, want ErrReadPastPage", err)
	}
}

func TestRetrieve_ShortPage_ReadPastPage(t *testing.T) {
	for _, size := range []int{0, 8, HeaderSize, HeaderSize + 10} {
		k, _, _, flbs := incomingSetup(t, Options{}, nil)
		page := makePage(1, pageEntry{"a", 1, 1})[:size]
		if err := k.SetupIncoming(page); err != nil {
			t.Fatal(err)
		}
		if _, err := k.GetIncoming(flbs[0]); !errors.Is(err, ErrReadPastPage) {
			t.Errorf("page of %d bytes: GetIncoming = %v, want ErrReadPastPage", size, err)
		}
	}
}

package flb

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/pkg/kernel"
)

// serialized returns the outgoing page after Serialize.
func serialized(t *testing.T, k *Kernel, page []byte) []Entry {
	t.Helper()
	if err := k.Serialize(); err != nil {
		t.Fatal(err)
	}
	pgcnt, count, err := ReadHeader(page)
	if err != nil {
		t.Fatal(err)
	}
	if pgcnt != PageCount {
		t.Fatalf("pgcnt %d, want %d", pgcnt, PageCount)
	}
	var out []Entry
	for i := range int(count) {
		e, err := ReadEntry(page, i)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func TestSetupOutgoing_SetsPgcnt(t *testing.T) {
	k := New(Options{})
	page := make([]byte, kernel.PageSize)
	if err := k.SetupOutgoing(page); err != nil {
		t.Fatal(err)
	}
	if pgcnt, count, _ := ReadHeader(page); pgcnt != 1 || count != 0 {
		t.Fatalf("header %d/%d, want 1/0", pgcnt, count)
	}
	if err := k.SetupOutgoing(make([]byte, 100)); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("short page: %v, want EINVAL", err)
	}
}

func TestSerialize_OnlyCountAboveZero_InRegistrationOrder(t *testing.T) {
	k := New(Options{})
	tf := newTestFLB()
	h1, h2 := registeredHandler(), registeredHandler()
	a, b, c := tf.flb("a", nil), tf.flb("b", nil), tf.flb("c", nil)
	mustRegister(t, k, h1, c, a) // global order: c, a, b
	mustRegister(t, k, h2, b, c)
	page := make([]byte, kernel.PageSize)
	if err := k.SetupOutgoing(page); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := k.FilePreserve(h2); err != nil { // b, c
			t.Fatal(err)
		}
	}
	if err := k.FilePreserve(h1); err != nil { // c, a
		t.Fatal(err)
	}
	k.FileUnpreserve(h1) // a back to 0
	got := serialized(t, k, page)
	want := []struct {
		name  string
		count uint64
	}{{"c", 2}, {"b", 2}}
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	for i, w := range want {
		name, term := got[i].NameString()
		if name != w.name || !term || got[i].Count != w.count || got[i].Data != dataFor(w.name) {
			t.Errorf("entry %d = %q/%d/%#x, want %q/%d/%#x", i, name, got[i].Count, got[i].Data, w.name, w.count, dataFor(w.name))
		}
	}
}

func TestSerialize_TruncatesNameTo47(t *testing.T) {
	long := strings.Repeat("L", NameLen)
	k := New(Options{})
	f := newTestFLB().flb(long, nil)
	h := registeredHandler()
	mustRegister(t, k, h, f)
	page := make([]byte, kernel.PageSize)
	if err := k.SetupOutgoing(page); err != nil {
		t.Fatal(err)
	}
	if err := k.FilePreserve(h); err != nil {
		t.Fatal(err)
	}
	got := serialized(t, k, page)
	name, term := got[0].NameString()
	if name != long[:NameLen-1] || !term {
		t.Fatalf("name %q (terminated %v), want 47 bytes and a NUL", name, term)
	}

	// The next kernel, with the same FLB, no longer finds it.
	k2 := New(Options{})
	f2 := newTestFLB().flb(long, nil)
	mustRegister(t, k2, registeredHandler(), f2)
	if err := k2.SetupIncoming(page); err != nil {
		t.Fatal(err)
	}
	if _, err := k2.GetIncoming(f2); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("GetIncoming = %v, want ENOENT (state silently lost)", err)
	}
}

func TestSerialize_NoPadding_StaleBytesAfterNUL(t *testing.T) {
	k := New(Options{})
	tf := newTestFLB()
	h1, h2 := registeredHandler(), registeredHandler()
	mustRegister(t, k, h1, tf.flb("longer-name", nil))
	mustRegister(t, k, h2, tf.flb("ab", nil))
	page := make([]byte, kernel.PageSize)
	if err := k.SetupOutgoing(page); err != nil {
		t.Fatal(err)
	}
	if err := k.FilePreserve(h1); err != nil {
		t.Fatal(err)
	}
	serialized(t, k, page)
	k.FileUnpreserve(h1)
	if err := k.FilePreserve(h2); err != nil {
		t.Fatal(err)
	}
	got := serialized(t, k, page)
	if !bytes.HasPrefix(got[0].Name[:], []byte("ab\x00ger-name\x00")) {
		t.Fatalf("name bytes %q, want strscpy without padding", got[0].Name[:16])
	}
}

func TestSerialize_63FLBs_FillThePage(t *testing.T) {
	k := New(Options{})
	tf := newTestFLB()
	h := registeredHandler()
	for i := range Max {
		mustRegister(t, k, h, tf.flb(fmt.Sprintf("flb-%02d", i), nil))
	}
	page := make([]byte, kernel.PageSize)
	if err := k.SetupOutgoing(page); err != nil {
		t.Fatal(err)
	}
	if err := k.FilePreserve(h); err != nil {
		t.Fatal(err)
	}
	got := serialized(t, k, page)
	if len(got) != Max {
		t.Fatalf("%d entries, want %d", len(got), Max)
	}
	if name, _ := got[Max-1].NameString(); name != "flb-62" {
		t.Fatalf("last entry %q", name)
	}
}

func TestSerialize_WithoutSetupOutgoing_Error(t *testing.T) {
	if err := New(Options{}).Serialize(); err == nil {
		t.Fatal("Serialize without an outgoing page succeeded")
	}
}

func TestReadEntry_Bounds(t *testing.T) {
	page := make([]byte, kernel.PageSize)
	for _, i := range []int{-1, Max, Max + 1} {
		if _, err := ReadEntry(page, i); err == nil {
			t.Errorf("ReadEntry(%d) succeeded", i)
		}
	}
	if _, err := ReadEntry(page[:HeaderSize+EntrySize-1], 0); err == nil {
		t.Error("ReadEntry on a truncated page succeeded")
	}
	if _, _, err := ReadHeader(page[:HeaderSize-1]); err == nil {
		t.Error("ReadHeader on a truncated page succeeded")
	}
	if _, err := ReadEntry(page, Max-1); err != nil {
		t.Errorf("ReadEntry(62): %v", err)
	}
}

// FuzzGetIncoming feeds arbitrary incoming pages: lookups must never panic,
// and any success must come from an entry inside the page.
func FuzzGetIncoming(f *testing.F) {
	f.Add(makePage(1, pageEntry{"a", 1, 1}), "a")
	f.Add(makePage(1000, pageEntry{strings.Repeat("a", NameLen), 1, 1}), strings.Repeat("a", NameLen))
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 255}, "x")
	f.Fuzz(func(t *testing.T, page []byte, compat string) {
		if len(compat) > NameLen {
			compat = compat[:NameLen]
		}
		k := New(Options{FixFinishBeforeRetrieve: len(page)%2 == 0})
		fl := newTestFLB().flb(compat, nil)
		h := registeredHandler()
		if err := k.RegisterFLB(h, fl); err != nil {
			return
		}
		if err := k.SetupIncoming(page); err != nil {
			return
		}
		_ = k.FileFinish(h)
		obj, err := k.GetIncoming(fl)
		if err == nil && obj == nil {
			t.Fatal("success without an object")
		}
	})
}

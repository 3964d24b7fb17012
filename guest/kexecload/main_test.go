package main

import (
	"testing"

	"github.com/kho-sim/kho-sim/internal/corrupt"
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/luo"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// TestWriteHandover: the minimal handover is a kho-v4 root FDT whose radix
// tree preserves the root page and the luo-v5 blob, which carries
// liveupdate number 1 (a cold boot's), no sessions and an FLB page of
// no entries (7.2 allocates it at boot), as Linux 7.2's kho_populate and
// luo_early_startup read them; every one of those pages is in the tree.
func TestWriteHandover(t *testing.T) {
	const base = 0x10000000
	region, err := physmem.New(base, make([]byte, 16<<20))
	if err != nil {
		t.Fatal(err)
	}
	root, number, err := writeHandover(region)
	if err != nil {
		t.Fatal(err)
	}
	if number != 1 {
		t.Errorf("liveupdate number %d, want 1", number)
	}
	in, err := kho.ReadIncoming(region, root)
	if err != nil {
		t.Fatal(err)
	}
	if in.Compatible() != kho.CompatibleV4 {
		t.Errorf("compatible %q", in.Compatible())
	}
	pa, size, err := in.SubtreeBlob(luo.FDTKHOEntryName)
	if err != nil || size != luo.SerSize {
		t.Fatalf("LUO blob %#x+%d: %v", pa, size, err)
	}
	blob, err := in.SubtreeBytes(luo.FDTKHOEntryName)
	if err != nil {
		t.Fatal(err)
	}
	ser, err := luo.ParseSer(kernel.V72, blob)
	if err != nil || ser.Compatible != luo.SerCompatible || ser.LiveupdateNum != 1 || ser.SessionsPA != 0 || ser.FLBsPA == 0 {
		t.Fatalf("luo_ser %+v, %v", ser, err)
	}
	preserved := in.Ranges()
	for _, want := range []physmem.Range{{Start: root, Size: physmem.PageSize}, {Start: pa, Size: physmem.PageSize}, {Start: ser.FLBsPA, Size: physmem.PageSize}} {
		found := false
		for _, r := range preserved {
			found = found || r.Contains(want)
		}
		if !found {
			t.Errorf("%v is not in the radix tree (%v): the real kernel would not keep it", want, preserved)
		}
	}
	// The control the e2e test boots: a root compatible the kernel refuses.
	if _, err := corrupt.Apply(region, root, corrupt.RootCompatible); err != nil {
		t.Fatal(err)
	}
	if _, err := kho.ReadIncoming(region, root); err == nil {
		t.Error("the damaged root compatible still reads as kho-v4")
	}
}

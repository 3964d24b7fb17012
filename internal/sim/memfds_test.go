package sim

import (
	"bytes"
	"strings"
	"testing"

	"github.com/kho-sim/kho-sim/internal/check"
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/luo"
	"github.com/kho-sim/kho-sim/pkg/memfd"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// testFLBMagic is lib/tests/liveupdate.c's TEST_FLB_MAGIC_BASE.
const testFLBMagic = 0xfeedf00dcafebee0

// realConsumerBoot1 runs the real-consumer scenario's first boot on the
// 7.2 generation and returns the region and the handover it wrote.
func realConsumerBoot1(t *testing.T) (*physmem.Region, []byte, *Outcome) {
	t.Helper()
	mem := make([]byte, 16<<20)
	r, err := physmem.New(testBase, mem)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	o := Run(Config{Region: r, Scenario: lookup(t, "real-consumer"), In: Handover{Boot: 1}, Boots: 2, Out: &out, ABI: kernel.V72})
	if !o.OK {
		t.Fatalf("boot 1 failed:\n%s", out.String())
	}
	return r, mem, o
}

// TestRealConsumer_HandoverIsWhatTheRealKernelRestores reads boot 1's
// handover as the 7.2 kernel would: memfd-v2 files whose data is a
// memfd_luo_ser with every block preserved (memfd_luo_retrieve), and the
// test FLBs with TEST_FLB_MAGIC_BASE + i and a count of the files using
// them (luo_flb_file_preserve counts one per file of the handler).
func TestRealConsumer_HandoverIsWhatTheRealKernelRestores(t *testing.T) {
	r, _, o := realConsumerBoot1(t)
	in, err := kho.ReadIncoming(r, o.Next.RootPA)
	if err != nil {
		t.Fatal(err)
	}
	h := luo.Decode(in, luo.DecodeOptions{Generation: kernel.V72})
	if len(h.Findings) != 0 {
		t.Fatalf("findings on kho-sim's own handover: %v", h.Findings)
	}
	if h.LiveupdateNumber != 1 {
		t.Errorf("liveupdate number %d, want 1", h.LiveupdateNumber)
	}
	files, err := MemfdFiles(lookup(t, "real-consumer"), 1)
	if err != nil {
		t.Fatal(err)
	}
	if h.FLB == nil || len(h.FLB.Entries) != 3 {
		t.Fatalf("FLB table %+v, want the 3 test FLBs", h.FLB)
	}
	for i, e := range h.FLB.Entries {
		if e.Data != testFLBMagic+uint64(e.Name[len(e.Name)-1]-'0') || e.Count != uint64(len(files)) || !strings.HasPrefix(e.Name, "liveupdate-test-flb-v") {
			t.Errorf("FLB entry %d: %q data %#x count %d, want liveupdate-test-flb-vN, %#x+N, count %d", i, e.Name, e.Data, e.Count, uint64(testFLBMagic), len(files))
		}
	}
	mm := in
	found := 0
	for _, s := range h.Sessions.Sessions {
		for _, fe := range s.Files {
			if fe.Compatible != "memfd-v2" {
				t.Errorf("session %s file %d: compatible %q, want memfd-v2", s.Name, fe.Token, fe.Compatible)
				continue
			}
			var want *MemfdFile
			for i := range files {
				if files[i].Session == s.Name && files[i].Token == fe.Token {
					want = &files[i]
				}
			}
			if want == nil {
				t.Errorf("session %s file %d: not in the scenario", s.Name, fe.Token)
				continue
			}
			found++
			got, err := memfd.Read(mm, fe.Data, memfd.Options{Preserved: mm.BlockAt})
			if err != nil {
				t.Errorf("%s: %v", want.Name(), err)
				continue
			}
			content, err := got.Content(mm)
			if err != nil {
				t.Fatal(err)
			}
			wantContent, _ := want.Spec.Content()
			if !bytes.Equal(content, wantContent) || got.Seals() != want.Spec.Seals || got.Ser.Pos != want.Spec.Pos {
				t.Errorf("%s: %s, pos %d; want %d bytes of the spec's content, seals %#x, pos %d", want.Name(), got, got.Ser.Pos, len(wantContent), want.Spec.Seals, want.Spec.Pos)
			}
		}
	}
	if found != len(files) {
		t.Errorf("%d memfds in the handover, want %d", found, len(files))
	}
}

// TestRealConsumer_NextBootRestoresEveryMemfd: kho-sim's own next boot
// reads every memfd back through pkg/memfd, compares its bytes, and
// retrieves and finishes the test FLBs, with every promise kept.
func TestRealConsumer_NextBootRestoresEveryMemfd(t *testing.T) {
	for _, abi := range []kernel.Generation{kernel.V72, kernel.V70} {
		outs, log, _ := chainABI(t, lookup(t, "real-consumer"), 2, []kernel.Generation{abi}, "", nil)
		if len(outs) != 2 || !outs[0].OK || !outs[1].OK {
			t.Fatalf("%s: a boot failed:\n%s", abi, log)
		}
		if !strings.Contains(log, "ok 9 retrieved data equals what was preserved") {
			t.Errorf("%s: no payload check in the log:\n%s", abi, log)
		}
		var finished int
		for _, e := range outs[1].Events {
			if e.Kind == check.Finish && strings.HasPrefix(e.FLB, "liveupdate-test-flb-v") {
				finished++
			}
		}
		if finished != 3 {
			t.Errorf("%s: %d test FLBs finished, want 3:\n%s", abi, finished, log)
		}
	}
}

// TestRealConsumer_DamageFound: a byte changed in a folio, a test FLB's
// handle changed (test_flb_retrieve's "incorrect data handle") and a
// memfd_luo_ser's size changed are each reported by the next boot.
func TestRealConsumer_DamageFound(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, r *physmem.Region, in *kho.Incoming, h *luo.Handover)
		want   string
	}{
		{"folio byte", func(t *testing.T, r *physmem.Region, in *kho.Incoming, h *luo.Handover) {
			mm := in
			f, err := memfd.Read(mm, h.Sessions.Sessions[0].Files[0].Data, memfd.Options{})
			if err != nil {
				t.Fatal(err)
			}
			b, err := r.Bytes(f.Folios[1].PA()+17, 1)
			if err != nil {
				t.Fatal(err)
			}
			b[0] ^= 0x40
		}, "checksum"},
		{"FLB handle", func(t *testing.T, r *physmem.Region, in *kho.Incoming, h *luo.Handover) {
			b, err := r.Bytes(h.FLB.PA+16+48, 8) // entry 0's data: after {pgcnt, count} and the 48-byte name
			if err != nil {
				t.Fatal(err)
			}
			b[0] ^= 1
		}, "liveupdate-test-flb-v0"},
		{"memfd size", func(t *testing.T, r *physmem.Region, in *kho.Incoming, h *luo.Handover) {
			b, err := r.Bytes(h.Sessions.Sessions[0].Files[0].Data+8, 8)
			if err != nil {
				t.Fatal(err)
			}
			b[0]++
		}, "size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, mem, o := realConsumerBoot1(t)
			in, err := kho.ReadIncoming(r, o.Next.RootPA)
			if err != nil {
				t.Fatal(err)
			}
			h := luo.Decode(in, luo.DecodeOptions{Generation: kernel.V72})
			tt.damage(t, r, in, h)
			r2, _ := physmem.New(testBase, mem)
			var out bytes.Buffer
			o2 := Run(Config{Region: r2, Scenario: lookup(t, "real-consumer"), In: o.Next, Boots: 2, Out: &out, ABI: kernel.V72})
			log := out.String()
			if o2.OK {
				t.Fatalf("boot 2 passed on damage:\n%s", log)
			}
			if !strings.Contains(log, tt.want) {
				t.Fatalf("boot 2 does not mention %q:\n%s", tt.want, log)
			}
		})
	}
}

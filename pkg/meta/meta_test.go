package meta

import (
	"fmt"
	"strings"
	"testing"

	"github.com/kho-sim/kho-sim/pkg/fdt"
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/luo"
)

func sample() *Meta {
	return &Meta{Scenario: "s", Boot: 2, Boots: 5, LUONumber: 2, Fix: true, Passed: 1, TSCHz: 3e9, TSCReboot: 7,
		FLBs:  []FLB{{Name: "a", Data: 1, Count: 2, Size: 3, Seed: 4, CRC: 5}},
		Files: []File{{Session: "s", Token: 9, Handler: "h", Data: 8, Size: 7, Seed: 6, CRC: 5}}}
}

func TestRoundTrip(t *testing.T) {
	m := sample()
	blob, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	tree, err := fdt.Parse(blob)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(tree)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(m) {
		t.Fatalf("got %+v\nwant %+v", got, m)
	}
}

// TestCheck compares decoded LUO state with the metadata: each kind of
// difference is one finding, in the handover's kernel's words.
func TestCheck(t *testing.T) {
	good := func() *luo.Handover {
		return &luo.Handover{Generation: kernel.V72, Readable: true, Followed: true, Where: luo.WhereBlob, LiveupdateNumber: 2,
			Ser: &luo.Span{PA: 0x1000, Size: luo.SerSize}, FLBsPA: 0x2000, SessionsPA: 0x3000,
			FLB:      &luo.FLBTable{Entries: []luo.FLBEntry{{Name: "a", NameTerminated: true, Data: 1, Count: 2}}},
			Sessions: &luo.SessionTable{Sessions: []luo.SessionEntry{{Name: "s", Files: []luo.FileEntry{{Compatible: "h", Data: 8, Token: 9}}}}}}
	}
	tests := []struct {
		name   string
		damage func(h *luo.Handover)
		want   []string // "where: what; kernel" substrings, in order
	}{
		{"none", func(*luo.Handover) {}, nil},
		{"unreadable", func(h *luo.Handover) { h.Readable = false }, []string{"there is no readable LUO subtree; the 7.2 kernel does not find the FLB"}},
		{"refused", func(h *luo.Handover) { h.Followed = false }, nil},
		{"number", func(h *luo.Handover) { h.LiveupdateNumber = 5 }, []string{"LUO blob: liveupdate-number 5, want 2"}},
		{"flbs_pa 0", func(h *luo.Handover) { h.FLBsPA, h.FLB = 0, nil }, []string{"FLB table: luo_ser flbs_pa is 0, but 1 FLBs were handed over; the 7.2 kernel does not find the FLB"}},
		{"FLB renamed", func(h *luo.Handover) { h.FLB.Entries[0].Name = "b" }, []string{`FLB "a" missing from the table; the 7.2 kernel`, `FLB "b" in the table but never preserved`}},
		{"FLB data", func(h *luo.Handover) { h.FLB.Entries[0].Data = 7 }, []string{`FLB "a": table has data 0x7 count 2, expected data 0x1 count 2`}},
		{"file lost", func(h *luo.Handover) { h.Sessions.Sessions[0].Files = nil }, []string{"file s/9 missing from the session blocks"}},
		{"file handler", func(h *luo.Handover) { h.Sessions.Sessions[0].Files[0].Compatible = "x" }, []string{`file s/9: session block has handler "x"`}},
		{"no sessions", func(h *luo.Handover) { h.SessionsPA, h.Sessions = 0, nil }, []string{"file s/9 missing from the session blocks"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := good()
			tt.damage(h)
			got := sample().Check(h, nil)
			if len(got) != len(tt.want) {
				t.Fatalf("findings %v, want %d", got, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i].String(), w) {
					t.Errorf("finding %d %q lacks %q", i, got[i].String(), w)
				}
			}
		})
	}
}

// FuzzDecode feeds arbitrary FDTs: the metadata comes from the previous
// kernel's memory. What decodes must encode and decode to the same.
func FuzzDecode(f *testing.F) {
	blob, err := sample().Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(blob)
	f.Fuzz(func(t *testing.T, b []byte) {
		tree, err := fdt.Parse(b)
		if err != nil {
			return
		}
		m, err := Decode(tree)
		if err != nil {
			return
		}
		again, err := m.Encode()
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", m, err)
		}
		tree, err = fdt.Parse(again)
		if err != nil {
			t.Fatal(err)
		}
		if m2, err := Decode(tree); err != nil || fmt.Sprint(m2) != fmt.Sprint(m) {
			t.Fatalf("round trip: %+v, %v; want %+v", m2, err, m)
		}
	})
}

// TestRoundTripFlags: an FLB's handle flag and a file's memfd flag survive
// the metadata, and metadata written without them decodes as false.
func TestRoundTripFlags(t *testing.T) {
	m := sample()
	m.FLBs = append(m.FLBs, FLB{Name: "liveupdate-test-flb-v0", Data: 0xfeedf00dcafebee0, Count: 2, Handle: true})
	m.Files = append(m.Files, File{Session: "s", Token: 10, Handler: "memfd-v2", Data: 9, Size: 1, CRC: 2, Memfd: true})
	blob, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	tree, err := fdt.Parse(blob)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(tree)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(m) {
		t.Fatalf("got %+v\nwant %+v", got, m)
	}
	if got.FLBs[0].Handle || got.Files[0].Memfd || !got.FLBs[1].Handle || !got.Files[1].Memfd {
		t.Fatalf("flags: FLBs %+v files %+v", got.FLBs, got.Files)
	}
}

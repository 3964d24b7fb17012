package sim

import (
	"encoding/binary"
	"slices"
	"strings"
	"testing"

	"github.com/kho-sim/kho-sim/pkg/inspect"
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/luo"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// TestReaders_SameFindings feeds the same hostile images to the three
// readers of an incoming handover: inspect, the simulator's incoming side
// (the next boot) and the strict reader the guest runs over /dev/mem
// (luo.Read). The guest's findings are the run inspect reports for the
// LUO state, in the same words, and the next boot fails with each of
// them; where the state itself is sound and only its comparison with
// kho-sim's metadata fails, the next boot reports what inspect does.
func TestReaders_SameFindings(t *testing.T) {
	put := func(t *testing.T, r *physmem.Region, pa, v uint64) {
		t.Helper()
		b, err := r.Bytes(pa, 8)
		if err != nil {
			t.Fatal(err)
		}
		binary.LittleEndian.PutUint64(b, v)
	}
	fill := func(t *testing.T, r *physmem.Region, pa, n uint64, c byte) {
		t.Helper()
		b, err := r.Bytes(pa, n)
		if err != nil {
			t.Fatal(err)
		}
		for i := range b {
			b[i] = c
		}
	}
	type damage func(t *testing.T, r *physmem.Region, h *luo.Handover)
	every := []kernel.Generation{kernel.V70, kernel.LUOv2, kernel.V72}
	tests := []struct {
		name string
		gens []kernel.Generation
		do   damage
	}{
		{"FLB count 64", every, func(t *testing.T, r *physmem.Region, h *luo.Handover) { put(t, r, h.FLBsPA+8, 64) }},
		{"FLB pgcnt 2", every, func(t *testing.T, r *physmem.Region, h *luo.Handover) { put(t, r, h.FLBsPA, 2) }},
		{"FLB name without NUL", every, func(t *testing.T, r *physmem.Region, h *luo.Handover) { fill(t, r, h.FLBsPA+16, 48, 'x') }},
		{"FLB data unpreserved", every, func(t *testing.T, r *physmem.Region, h *luo.Handover) {
			put(t, r, h.FLBsPA+16+48, r.End()-physmem.PageSize)
		}},
		{"session count 1000", []kernel.Generation{kernel.V70, kernel.LUOv2}, func(t *testing.T, r *physmem.Region, h *luo.Handover) {
			put(t, r, h.SessionsPA, 1000)
		}},
		{"file count 129", []kernel.Generation{kernel.V70, kernel.LUOv2}, func(t *testing.T, r *physmem.Region, h *luo.Handover) {
			put(t, r, h.SessionsPA+8+72, 129)
		}},
		{"session block count 0", []kernel.Generation{kernel.V72}, func(t *testing.T, r *physmem.Region, h *luo.Handover) {
			put(t, r, h.SessionsPA+8, 0)
		}},
		{"session chain loops", []kernel.Generation{kernel.V72}, func(t *testing.T, r *physmem.Region, h *luo.Handover) {
			put(t, r, h.SessionsPA, h.SessionsPA)
		}},
		{"file count differs", []kernel.Generation{kernel.V72}, func(t *testing.T, r *physmem.Region, h *luo.Handover) {
			put(t, r, h.SessionsPA+luo.BlockHeaderSize+72, 5)
		}},
		{"file block shared", []kernel.Generation{kernel.V72}, func(t *testing.T, r *physmem.Region, h *luo.Handover) {
			put(t, r, h.SessionsPA+luo.BlockHeaderSize+luo.SessionEntrySize+64, h.Sessions.Sessions[0].FilesPA)
		}},
		{"LUO compatible", []kernel.Generation{kernel.V72}, func(t *testing.T, r *physmem.Region, h *luo.Handover) {
			b, _ := r.Bytes(h.Ser.PA, 8)
			copy(b, "luo-v9\x00")
		}},
		{"liveupdate number 0", []kernel.Generation{kernel.V72}, func(t *testing.T, r *physmem.Region, h *luo.Handover) {
			put(t, r, h.Ser.PA+8, 0)
		}},
		{"liveupdate number 5", []kernel.Generation{kernel.LUOv2, kernel.V72}, func(t *testing.T, r *physmem.Region, h *luo.Handover) {
			off := uint64(0)
			if h.Generation == kernel.V72 {
				off = luo.SerCompatLen
			}
			put(t, r, h.Ser.PA+off, 5)
		}},
	}
	for _, tt := range tests {
		for _, g := range tt.gens {
			t.Run(string(g)+"/"+tt.name, func(t *testing.T) {
				var guest []kernel.Finding
				var rep *inspect.Report
				damage := func(r *physmem.Region, root uint64) (string, error) {
					in, err := kho.ReadIncoming(r, root)
					if err != nil {
						return "", err
					}
					tt.do(t, r, luo.Decode(in, luo.DecodeOptions{}))
					if h, _ := luo.Read(r, root); h != nil {
						guest = h.Findings
					}
					rep = inspect.Decode(r, root)
					return tt.name, nil
				}
				outs, log, _ := chainABI(t, lookup(t, "default"), 2, []kernel.Generation{g}, "", damage)
				if rep == nil || len(outs) != 2 {
					t.Fatalf("the image was not damaged:\n%s", log)
				}
				want := guest
				if len(guest) > 0 {
					if !containsRun(rep.Findings, guest) {
						t.Errorf("inspect's findings\n%s\nlack the guest reader's\n%s", list(rep.Findings), list(guest))
					}
				} else {
					want = slices.DeleteFunc(slices.Clone(rep.Findings), func(f kernel.Finding) bool { return f.Where == "payloads" })
				}
				if len(want) == 0 {
					t.Fatalf("no reader found the damage:\n%s", list(rep.Findings))
				}
				if outs[1].OK {
					t.Errorf("the next boot accepted the damage:\n%s", log)
				}
				for _, f := range want {
					if !strings.Contains(log, f.Error()) {
						t.Errorf("the next boot does not report %q:\n%s", f.Error(), log)
					}
				}
			})
		}
	}
}

// containsRun reports whether want stands in all, in order and adjacent.
func containsRun(all, want []kernel.Finding) bool {
	for i := 0; i+len(want) <= len(all); i++ {
		if slices.Equal(all[i:i+len(want)], want) {
			return true
		}
	}
	return false
}

func list(fs []kernel.Finding) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString(f.String() + "\n")
	}
	return b.String()
}

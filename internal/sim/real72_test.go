package sim

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/internal/realhandover"
	"github.com/kho-sim/kho-sim/internal/scenario"
	"github.com/kho-sim/kho-sim/pkg/flb"
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/luo"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// TestStrictReadAcceptsTheSimulatedHandover reads what kho-sim writes as
// 7.2 with luo.Read, which holds a handover to everything a real 7.2
// kernel's satisfies: the LUO state and FLB table the metadata records,
// and the kexec-metadata.
func TestStrictReadAcceptsTheSimulatedHandover(t *testing.T) {
	all, err := scenario.Builtins()
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range all {
		t.Run(sc.Name, func(t *testing.T) {
			// boot 2's handover: written after a hop, with incoming state
			mem := make([]byte, 16<<20)
			var out bytes.Buffer
			in := Handover{Boot: 1}
			var o *Outcome
			for range 2 {
				r, _ := physmem.New(testBase, mem)
				o = Run(Config{Region: r, Scenario: sc, In: in, Boots: 3, Out: &out, ABI: kernel.V72})
				if !o.OK {
					t.Fatalf("boot %d failed:\n%s", in.Boot, out.String())
				}
				in = o.Next
			}
			if o.Next.RootPA == 0 {
				t.Skip("no handover after boot 2")
			}
			r, _ := physmem.New(testBase, mem)
			h, err := luo.Read(r, o.Next.RootPA)
			if err != nil {
				t.Fatalf("the strict reader refuses kho-sim's 7.2 handover: %v", err)
			}
			kin := h.In
			meta := decodeMeta(t, kin)
			if !h.Readable || h.LiveupdateNumber != meta.LUONumber || (h.Sessions == nil) != (h.SessionsPA == 0) {
				t.Fatalf("LUO %+v, want liveupdate number %d", h, meta.LUONumber)
			}
			files := map[[2]any]uint64{}
			var sessions []luo.SessionEntry
			if h.Sessions != nil {
				sessions = h.Sessions.Sessions
			}
			for _, s := range sessions {
				for _, f := range s.Files {
					files[[2]any{s.Name, f.Token}] = f.Data
				}
			}
			if len(files) != len(meta.Files) {
				t.Fatalf("the reader found %d files, metadata lists %d", len(files), len(meta.Files))
			}
			for _, f := range meta.Files {
				if d, ok := files[[2]any{f.Session, f.Token}]; !ok || d != f.Data {
					t.Errorf("file %s/%d: data %#x (found %v), want %#x", f.Session, f.Token, d, ok, f.Data)
				}
			}
			if h.FLB == nil || len(h.FLB.Entries) != len(meta.FLBs) {
				t.Fatalf("FLB table %+v, metadata lists %d", h.FLB, len(meta.FLBs))
			}
			flbs := map[string]luo.FLBEntry{}
			for _, e := range h.FLB.Entries {
				flbs[e.Name] = e
			}
			for _, w := range meta.FLBs {
				name := w.Name[:min(len(w.Name), 47)] // strscpy into 48 bytes
				if e, ok := flbs[name]; !ok || e.Data != w.Data || e.Count != w.Count {
					t.Errorf("FLB %q: table %+v (found %v), metadata %+v", name, e, ok, w)
				}
			}
			if m := h.KexecMetadata; m == nil || uint64(m.KexecCount) != meta.LUONumber {
				t.Fatalf("kexec-metadata %+v, want kexec_count %d", m, meta.LUONumber)
			}
		})
	}
}

func decodeMeta(t *testing.T, in *kho.Incoming) *Meta {
	t.Helper()
	tree, _, err := in.SubtreeFDT(MetaName)
	if err != nil {
		t.Fatal(err)
	}
	m, err := DecodeMeta(tree)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// realReleaseEnv names the release (uname -r) of the kernel that wrote the
// handover of KHO_SIM_REAL_HANDOVER: e2e/realkernel runs these tests on
// Linux 7.2 and 7.3 captures, whose kexec-metadata differ only there.
const realReleaseEnv = "KHO_SIM_REAL_RELEASE"

// realRelease is the release the kexec-metadata of the real handover must
// name: the committed capture's, or realReleaseEnv's.
func realRelease() string {
	if r := os.Getenv(realReleaseEnv); r != "" {
		return r
	}
	return "7.2.13"
}

// realNumberEnv names the liveupdate number and kexec_count the real
// handover carries: 1 when its kernel booted cold (the captures), 2 when it
// booted from kho-sim's handover (e2e/realkernel's consumer loop).
const realNumberEnv = "KHO_SIM_REAL_NUMBER"

// realNumber is realNumberEnv's value, 1 without it.
func realNumber(t *testing.T) uint32 {
	v := os.Getenv(realNumberEnv)
	if v == "" {
		return 1
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil || n == 0 {
		t.Fatalf("%s=%q: want a number from 1", realNumberEnv, v)
	}
	return uint32(n)
}

// realHandover loads the handover a real Linux 7.2 kernel left in memory
// (internal/realhandover, or the dump its Env names: 4 memfds in two
// sessions, three test FLBs) into a region that covers every preserved
// page.
func realHandover(t *testing.T) (*physmem.Region, uint64) {
	t.Helper()
	d := realhandover.LoadEnv(t)
	return realhandover.Region(t, d, d), d.Setup.FDTAddr
}

// TestRealLinux72Handover reads a real 7.2 kernel's handover with
// kho-sim's own readers and model: the kho-v4 root and radix tree, the
// generation, the kexec-metadata, then LUO as a 7.2 Core restores it.
func TestRealLinux72Handover(t *testing.T) {
	r, root := realHandover(t)
	in, err := kho.ReadIncoming(r, root)
	if err != nil {
		t.Fatal(err)
	}
	if g := luo.Detect(in); g != luo.Expected(kernel.V72) {
		t.Fatalf("generation %v, want %v", g, luo.Expected(kernel.V72))
	}
	if got := strings.Join(in.SubtreeNames(), ","); got != "LUO,kexec-metadata" {
		t.Fatalf("children %s", got)
	}
	if m, err := in.KexecMetadata(); err != nil || m != (kho.KexecMetadata{Version: 1, PreviousRelease: realRelease(), KexecCount: realNumber(t)}) {
		t.Fatalf("kexec-metadata %+v, %v", m, err)
	}
	if n := len(in.Blocks()); n != 27 {
		t.Fatalf("%d preserved blocks, the capture holds 27", n)
	}

	blob, err := in.SubtreeBytes(luo.FDTKHOEntryName)
	if err != nil {
		t.Fatal(err)
	}
	core := luo.New(realMemory{in}, luo.Options{Generation: kernel.V72})
	memfd := &luo.FileHandler{Compatible: "memfd-v2", Ops: luo.FileOps{
		CanPreserve: func(*luo.FileHandler, any) bool { return false },
		Preserve:    func(*luo.FileOpArgs) error { return unix.EINVAL },
		Unpreserve:  func(*luo.FileOpArgs) {},
		Retrieve:    func(a *luo.FileOpArgs) error { a.File = a.SerializedData; return nil },
		Finish:      func(*luo.FileOpArgs) {},
	}}
	if err := core.RegisterFileHandler(memfd); err != nil {
		t.Fatal(err)
	}
	var data []uint64
	var flbs []*flb.FLB
	for i := range 3 {
		f := &flb.FLB{Compatible: fmt.Sprintf("liveupdate-test-flb-v%d", i), Ops: &flb.Ops{
			Preserve:   func(*flb.OpArgs) error { return unix.EINVAL },
			Unpreserve: func(*flb.OpArgs) {},
			Retrieve:   func(a *flb.OpArgs) error { data = append(data, a.Data); return nil },
			Finish:     func(*flb.OpArgs) {},
		}}
		if err := core.RegisterFLB(memfd, f); err != nil {
			t.Fatal(err)
		}
		flbs = append(flbs, f)
	}
	if err := core.SetupIncoming(blob); err != nil {
		t.Fatal(err)
	}
	if in, out := core.LiveupdateNumber(); in != uint64(realNumber(t)) || out != in+1 {
		t.Fatalf("liveupdate numbers %d/%d, want %d/%d", in, out, realNumber(t), realNumber(t)+1)
	}
	if err := core.Open(); err != nil {
		t.Fatal(err)
	}
	if _, got := core.Sessions(); !slices.Equal(got, []string{"kho-sim-a", "kho-sim-b"}) {
		t.Fatalf("sessions %v", got)
	}
	s, err := core.RetrieveSession("kho-sim-a")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Tokens(); !slices.Equal(got, []uint64{0x1001, 0x1002, 0x1003}) {
		t.Fatalf("tokens %#x", got)
	}
	for _, f := range flbs {
		if _, err := core.FLB().GetIncoming(f); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(data, []uint64{0xfeedf00dcafebee0, 0xfeedf00dcafebee1, 0xfeedf00dcafebee2}) {
		t.Fatalf("FLB data %#x", data)
	}
	if w := core.Warnings(); len(w) != 0 {
		t.Fatalf("warnings %v", w)
	}
}

// realMemory maps only what the captured handover preserved.
type realMemory struct{ in *kho.Incoming }

func (m realMemory) AllocPreserve(uint64) (uint64, []byte, error) { return 0, nil, unix.ENOMEM }
func (m realMemory) UnpreserveFree(uint64) error                  { return unix.EINVAL }
func (m realMemory) Map(pa, size uint64) ([]byte, error)          { return m.in.Map(pa, size) }

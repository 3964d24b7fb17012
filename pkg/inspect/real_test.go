package inspect

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/kho-sim/kho-sim/internal/realhandover"
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/luo"
	"github.com/kho-sim/kho-sim/pkg/memfd"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// testFLBData is TEST_FLB_MAGIC_BASE of the kernel's lib/tests/liveupdate.c,
// whose three FLBs the captured kernel registered on every file handler.
const testFLBData = 0xfeedf00dcafebee0

// TestDecodeRealHandover decodes the handover a real Linux 7.2 kernel
// left in memory at its kexec: no finding, only the note that kho-sim's
// metadata is absent, and everything the strict reader (luo.Read), the
// capture's own record (testdata/real-7.2) and the guest's plan say is
// there.
func TestDecodeRealHandover(t *testing.T) {
	r, root := realRegion(t, "handover.txt")
	rep := Decode(r, root)
	if len(rep.Findings) != 0 {
		t.Fatalf("findings on a real 7.2 handover:\n%s", findings(rep))
	}
	if len(rep.Notes) != 1 || !strings.Contains(rep.Notes[0], "kho-sim metadata absent") {
		t.Errorf("notes %q, want only the absent kho-sim metadata", rep.Notes)
	}
	if g := rep.Generation; g == nil || *g != (Generation{Name: string(kernel.V72), KHO: kho.CompatibleV4, LUO: luo.SerCompatible}) {
		t.Errorf("generation %+v", rep.Generation)
	}
	d := realhandover.Load(t, realhandover.Handover)
	h, err := luo.Read(d.Pages, d.Setup.FDTAddr)
	if err != nil {
		t.Fatal(err)
	}
	// What the capture recorded: luo_ser, session and FLB pages, the
	// kexec-metadata, and 27 single-page blocks.
	const serPA, sessionsPA, flbsPA, metaPA, blocks = 0x3ad000, 0x3e6000, 0x3ae000, 0x1fd000, 27

	var names []string
	for _, s := range rep.Subtrees {
		names = append(names, s.Name)
		pa, size, err := h.In.SubtreeBlob(s.Name)
		if s.Kind != KindBlob || err != nil || uint64(s.PA) != pa || s.BlobSize != size || uint64(s.Size) != size || len(s.Hex) != 2*s.Size {
			t.Errorf("subtree %+v, reader %#x+%d %v", s, pa, size, err)
		}
	}
	if !slices.Equal(names, []string{luo.FDTKHOEntryName, kho.KexecMetadataName}) {
		t.Errorf("subtrees %v", names)
	}

	l := rep.LUO
	if l == nil || l.FLB == nil || l.Sessions == nil {
		t.Fatalf("LUO %+v", l)
	}
	if l.Compatible != luo.SerCompatible || l.LiveupdateNumber != 1 || l.Ser == nil || *l.Ser != (Ser{PA: serPA, Size: luo.SerSize}) ||
		l.SessionsPA != sessionsPA || l.FLBsPA != flbsPA {
		t.Errorf("LUO %+v ser %+v", l, l.Ser)
	}
	if l.FLB.PageCount != 1 || l.FLB.Count != 3 || len(l.FLB.Entries) != 3 {
		t.Fatalf("FLB table %+v", l.FLB)
	}
	for i, e := range l.FLB.Entries {
		want := FLBEntry{Index: i, Name: fmt.Sprintf("liveupdate-test-flb-v%d", i), NameTerminated: true, Data: Hex(testFLBData + uint64(i)), Count: 4}
		if e != want {
			t.Errorf("FLB %d: %+v, want %+v", i, e, want)
		}
	}
	// guest/luo's plan: two sessions, four memfds.
	plan := map[string][]uint64{"kho-sim-a": {0x1001, 0x1002, 0x1003}, "kho-sim-b": {0x2001}}
	if len(l.Sessions.Sessions) != len(plan) || l.Sessions.Count != 2 || len(l.Sessions.Blocks) != 1 {
		t.Fatalf("sessions %+v", l.Sessions)
	}
	for i, s := range l.Sessions.Sessions {
		g := h.Sessions.Sessions[i]
		tokens := plan[s.Name]
		if s.Name != g.Name || len(s.Files) != len(tokens) || s.Count != uint64(len(tokens)) || len(s.FileBlocks) != 1 {
			t.Errorf("session %d: %+v, reader %+v", i, s, g)
			continue
		}
		for j, f := range s.Files {
			if f.Compatible != "memfd-v2" || uint64(f.Token) != tokens[j] || uint64(f.Data) != g.Files[j].Data || f.Data == 0 || f.Data%physmem.PageSize != 0 {
				t.Errorf("session %q file %d: %+v, reader %+v", s.Name, j, f, g.Files[j])
			}
		}
	}
	// The four memfds guest/luo wrote with pwrite (sizes from its console
	// log): memfd_pin_folios leaves one order-0 folio per page, no holes,
	// and memfd_create without MFD_ALLOW_SEALING seals F_SEAL_SEAL.
	var sizes []uint64
	for _, s := range l.Sessions.Sessions {
		for _, f := range s.Files {
			m := f.Memfd
			if m == nil {
				t.Errorf("session %q file %d: no memfd-v2 state", s.Name, f.Index)
				continue
			}
			sizes = append(sizes, m.Size)
			if pages := int((m.Size + physmem.PageSize - 1) / physmem.PageSize); m.Folios != pages || m.Holes != 0 || m.Seals != 1 || m.Pos != 0 || m.CRC == 0 {
				t.Errorf("session %q file %d: memfd %+v, want %d folios, no holes, seals 0x1", s.Name, f.Index, m, pages)
			}
		}
	}
	slices.Sort(sizes)
	if !slices.Equal(sizes, []uint64{1, 4096, 8192, 12388}) {
		t.Errorf("memfd sizes %v", sizes)
	}
	if k := rep.KexecMetadata; k == nil || *k != (KexecMetadata{PA: metaPA, Size: kho.KexecMetadataSize, Version: 1, PreviousRelease: "7.2.13", KexecCount: 1}) {
		t.Errorf("kexec-metadata %+v", rep.KexecMetadata)
	}
	m := rep.Memory
	if m == nil || m.Encoding != EncodingRadix || m.Blocks != blocks || m.Bytes != blocks*physmem.PageSize || len(h.In.Blocks()) != blocks {
		t.Fatalf("memory %+v, want %d one-page blocks", m, blocks)
	}
	for _, s := range h.Structures() {
		if !preserved(m, s.PA) {
			t.Errorf("%s at %#x not in the ranges", s.What, s.PA)
		}
	}

	var text, js bytes.Buffer
	if err := WriteText(&text, rep); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`generation 7.2 (KHO "kho-v4", LUO "luo-v5")`, `compatible = "kho-v4";`, `== subtree "LUO": blob at`,
		"|luo-v5..", `"liveupdate-test-flb-v2"`, `session 1 "kho-sim-b"`, `"memfd-v2"`, `previous_release "7.2.13", kexec_count 1`,
		"== preserved memory (radix tree): 27 blocks", "== findings: 0 ==", "size 12388, 4 folios, crc32 0x"} {
		if !strings.Contains(text.String(), w) {
			t.Errorf("text lacks %q", w)
		}
	}
	if t.Failed() {
		t.Log(text.String())
	}
	if err := WriteJSON(&js, rep); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || !reflect.DeepEqual(&back, rep) {
		t.Errorf("JSON round trip: %v", err)
	}
}

// TestDecodeRealHandoverDamage damages the real handover where only
// kho-sim's strict 7.2 checks look, and reads the LUO page as the next
// kernel left it.
func TestDecodeRealHandoverDamage(t *testing.T) {
	tests := []struct {
		name   string
		dump   string
		apply  func(t *testing.T, rep *Report) (pa uint64, v uint64)
		where  string
		what   string
		kernel string
	}{
		{"liveupdate number 0", "handover.txt", func(t *testing.T, rep *Report) (uint64, uint64) {
			return uint64(rep.LUO.Ser.PA) + 8, 0
		}, whereBlob, "liveupdate number 0", ""},
		{"FLB count 0", "handover.txt", func(t *testing.T, rep *Report) (uint64, uint64) {
			return uint64(rep.LUO.FLBsPA) + 16 + 56, 0
		}, whereFLB, "count 0", ""},
		{"session chain loops", "handover.txt", func(t *testing.T, rep *Report) (uint64, uint64) {
			return uint64(rep.LUO.SessionsPA), uint64(rep.LUO.SessionsPA)
		}, whereSessions, "session block chain loops back to", "the 7.2 kernel panics at boot (liveupdate_early_init)"},
		{"the LUO blob after boot", "guest-dump.txt", nil, whereBlob, "LUO blob compatible", "the 7.2 kernel panics at boot (liveupdate_early_init)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, root := realRegion(t, tt.dump)
			if tt.apply != nil {
				pa, v := tt.apply(t, Decode(r, root))
				put64(t, r, pa, v)
			}
			rep := Decode(r, root)
			if !hasFinding(rep, tt.where, tt.what, tt.kernel) {
				t.Fatalf("no %s finding %q (%q) among:\n%s", tt.where, tt.what, tt.kernel, findings(rep))
			}
			checkReport(t, rep)
		})
	}
}

// TestDecodeRealMemfdDamage: a memfd-v2 state whose nr_folios claims more
// entries than its folio array holds (memfd_luo_retrieve never checks)
// is a finding for that file, and the other files still decode.
func TestDecodeRealMemfdDamage(t *testing.T) {
	r, root := realRegion(t, "handover.txt")
	h, err := luo.Read(r, root)
	if err != nil {
		t.Fatal(err)
	}
	f := h.Sessions.Sessions[0].Files[1]
	b, err := r.Bytes(f.Data, memfd.SerSize)
	if err != nil {
		t.Fatal(err)
	}
	ser, err := memfd.ParseSer(b)
	if err != nil {
		t.Fatal(err)
	}
	ser.NrFolios = 1000
	ser.Put(b)
	rep := Decode(r, root)
	if len(rep.Findings) != 1 || rep.Findings[0].Action != kernel.FailsMemfd || !strings.Contains(rep.Findings[0].What, fmt.Sprintf("token %#x", f.Token)) {
		t.Fatalf("findings:\n%s", findings(rep))
	}
	var decoded int
	for _, s := range rep.LUO.Sessions.Sessions {
		for _, file := range s.Files {
			if file.Memfd != nil {
				decoded++
			}
		}
	}
	if decoded != 3 {
		t.Errorf("%d memfds decoded beside the damaged one, want 3", decoded)
	}
}

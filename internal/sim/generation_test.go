package sim

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/kho-sim/kho-sim/internal/scenario"
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/ktap"
	"github.com/kho-sim/kho-sim/pkg/luo"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// chainABI is chain with a generation per boot: boot n writes
// abis[(n-1) % len] and expects to read readABI (its own when "").
// damage, when set, is applied to the image boot 1 writes.
func chainABI(t testing.TB, sc *scenario.Scenario, boots int, abis []kernel.Generation, readABI kernel.Generation, damage func(*physmem.Region, uint64) (string, error)) ([]*Outcome, string, []byte) {
	t.Helper()
	return chainWith(t, boots, Config{Scenario: sc, ReadABI: readABI}, abis, damage)
}

func validKTAP(t *testing.T, log string) *ktap.Report {
	t.Helper()
	rep, err := ktap.Parse(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	if probs := ktap.Validate(strings.NewReader(log)); len(probs) != 0 {
		t.Fatalf("invalid KTAP: %v\n%s", probs, log)
	}
	return rep
}

// TestGenerations_EveryScenarioRoundTrips runs every built-in scenario for
// three boots in each generation: every boot passes and the KTAP is valid.
func TestGenerations_EveryScenarioRoundTrips(t *testing.T) {
	all, err := scenario.Builtins()
	if err != nil {
		t.Fatal(err)
	}
	for _, abi := range []kernel.Generation{kernel.LUOv2, kernel.V72} {
		for _, sc := range all {
			t.Run(fmt.Sprintf("%s/%s", abi, sc.Name), func(t *testing.T) {
				outs, log, _ := chainABI(t, sc, 3, []kernel.Generation{abi}, "", nil)
				for i, o := range outs {
					if !o.OK {
						t.Fatalf("boot %d failed:\n%s", i+1, log)
					}
				}
				rep := validKTAP(t, log)
				if !rep.Passed() || rep.Plan != 3 || len(rep.Results) != 3 {
					t.Fatalf("KTAP does not pass (plan %d, %d results):\n%s", rep.Plan, len(rep.Results), log)
				}
				if sc.Name == "default" && !strings.Contains(log, "# handover generation "+string(abi)) {
					t.Fatalf("the generation is not named:\n%s", log)
				}
			})
		}
	}
}

// TestGenerations_ImageIsWhatTheKernelWrites reads boot 1's image of each
// generation with the package readers and checks the compatibles and the
// generation-specific parts.
func TestGenerations_ImageIsWhatTheKernelWrites(t *testing.T) {
	for _, abi := range kernel.Generations() {
		t.Run(string(abi), func(t *testing.T) {
			mem := make([]byte, 16<<20)
			r, _ := physmem.New(testBase, mem)
			var out bytes.Buffer
			o := Run(Config{Region: r, Scenario: lookup(t, "default"), In: Handover{Boot: 1}, Boots: 2, Out: &out, ABI: abi})
			if !o.OK {
				t.Fatalf("boot 1 failed:\n%s", out.String())
			}
			in, err := kho.ReadIncoming(r, o.Next.RootPA)
			if err != nil {
				t.Fatal(err)
			}
			g := luo.Detect(in)
			if g != luo.Expected(abi) {
				t.Fatalf("detected %v, want %v", g, luo.Expected(abi))
			}
			names := strings.Join(in.SubtreeNames(), ",")
			switch abi {
			case kernel.V72:
				if names != "kho-sim,LUO,kexec-metadata" {
					t.Fatalf("children %s, want newest first", names)
				}
				_, size, err := in.SubtreeBlob(luo.FDTKHOEntryName)
				if err != nil || size != luo.SerSize {
					t.Fatalf("LUO blob-size %d, %v", size, err)
				}
				m, err := in.KexecMetadata()
				if err != nil || m.KexecCount != 1 || m.Version != 1 {
					t.Fatalf("kexec-metadata %+v, %v", m, err)
				}
			default:
				if names != "kho-sim,LUO" {
					t.Fatalf("children %s", names)
				}
			}
		})
	}
}

// TestGenerations_KexecCountFollowsHops: 7.2's kexec_count counts the
// hops since the cold boot: the image boot 3 writes says 3.
func TestGenerations_KexecCountFollowsHops(t *testing.T) {
	mem := make([]byte, 16<<20)
	var out bytes.Buffer
	in := Handover{Boot: 1}
	for range 3 {
		r, _ := physmem.New(testBase, mem)
		o := Run(Config{Region: r, Scenario: lookup(t, "default"), In: in, Boots: 4, Out: &out, ABI: kernel.V72})
		if !o.OK || o.Next.RootPA == 0 {
			t.Fatalf("boot %d: ok=%v next %+v\n%s", in.Boot, o.OK, o.Next, out.String())
		}
		in = o.Next
	}
	r, _ := physmem.New(testBase, mem)
	kin, err := kho.ReadIncoming(r, in.RootPA)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := kin.KexecMetadata(); err != nil || m.KexecCount != 3 || m.PreviousRelease == "" {
		t.Fatalf("kexec-metadata %+v, %v; want kexec_count 3 and a release", m, err)
	}
}

// TestGenerations_MismatchReported: every ordered pair of different
// generations, boot 1 writing one and boot 2 expecting the other, fails
// boot 2 with a result naming both and what the real kernel does, stops the
// run, and keeps the KTAP valid.
func TestGenerations_MismatchReported(t *testing.T) {
	revival := "disables KHO revival"
	panics := "panics at boot"
	want := map[[2]kernel.Generation]string{
		{kernel.V70, kernel.LUOv2}: `a kernel with the luo-v2 LUO ABI finds the LUO FDT "luo-v1", not "luo-v2"`,
		{kernel.V70, kernel.V72}:   `Linux 7.2 rejects the KHO root "kho-v1"`,
		{kernel.LUOv2, kernel.V70}: `Linux 7.0 finds the LUO FDT "luo-v2", not "luo-v1" (luo_early_startup: EINVAL, and the FDT has no luo-flb node either)`,
		{kernel.LUOv2, kernel.V72}: `Linux 7.2 rejects the KHO root "kho-v1"`,
		{kernel.V72, kernel.V70}:   `Linux 7.0 rejects the KHO root "kho-v4"`,
		{kernel.V72, kernel.LUOv2}: `a kernel with the luo-v2 LUO ABI rejects the KHO root "kho-v4"`,
	}
	for _, writer := range kernel.Generations() {
		for _, reader := range kernel.Generations() {
			if writer == reader {
				continue
			}
			t.Run(fmt.Sprintf("%s read by %s", writer, reader), func(t *testing.T) {
				outs, log, _ := chainABI(t, lookup(t, "default"), 3, []kernel.Generation{writer}, reader, nil)
				if len(outs) != 2 || !outs[0].OK || outs[1].OK || !outs[1].Last {
					t.Fatalf("want boot 1 ok, boot 2 failing and last; got %d boots:\n%s", len(outs), log)
				}
				desc := fmt.Sprintf("not ok 2 the %s kernel reads the %s handover", reader, writer)
				text := want[[2]kernel.Generation{writer, reader}]
				action := revival
				if strings.Contains(text, "LUO FDT") {
					action = panics
				}
				for _, s := range []string{desc, "generation mismatch: boot 1 wrote a " + string(writer), text, action} {
					if !strings.Contains(log, s) {
						t.Errorf("log lacks %q:\n%s", s, log)
					}
				}
				// The image is still checked as what it is: valid.
				if strings.Contains(log, "not ok 4 ") || !strings.Contains(log, "ok 3 boot-3 # SKIP") {
					t.Errorf("the rest of the handover should check out and boot 3 be skipped:\n%s", log)
				}
				validKTAP(t, log)
			})
		}
	}
}

// TestGenerations_PerBootList: kho_sim.abi=7.0,7.2 makes boot 1 write 7.0
// and boot 2 a 7.2 kernel, which refuses it.
func TestGenerations_PerBootList(t *testing.T) {
	outs, log, _ := chainABI(t, lookup(t, "default"), 3, []kernel.Generation{kernel.V70, kernel.V72}, "", nil)
	if len(outs) != 2 || outs[1].OK || !strings.Contains(log, "not ok 2 the 7.2 kernel reads the 7.0 handover") {
		t.Fatalf("want the 7.2 boot to refuse the 7.0 handover:\n%s", log)
	}
	// 7.2, 7.2, 7.0: the third boot refuses the second's.
	outs, log, _ = chainABI(t, lookup(t, "default"), 3, []kernel.Generation{kernel.V72, kernel.V72, kernel.V70}, "", nil)
	if len(outs) != 3 || !outs[1].OK || outs[2].OK || !strings.Contains(log, `Linux 7.0 rejects the KHO root "kho-v4"`) {
		t.Fatalf("want boot 3 to refuse:\n%s", log)
	}
}

// TestGenerations_DamageReported: damage to the 7.2 and luo-v2 images is
// found by the strict readers, with what the 7.2 (or luo-v2) kernel does.
func TestGenerations_DamageReported(t *testing.T) {
	luoBlob := func(r *physmem.Region, root uint64) ([]byte, error) {
		in, err := kho.ReadIncoming(r, root)
		if err != nil {
			return nil, err
		}
		return in.SubtreeBytes(luo.FDTKHOEntryName)
	}
	ser := func(r *physmem.Region, root uint64) (luo.Ser, error) {
		blob, err := luoBlob(r, root)
		if err != nil {
			return luo.Ser{}, err
		}
		return luo.ParseSer(kernel.V72, blob)
	}
	put := func(r *physmem.Region, pa, v uint64) error {
		b, err := r.Bytes(pa, 8)
		if err == nil {
			binary.LittleEndian.PutUint64(b, v)
		}
		return err
	}
	tests := []struct {
		name   string
		abi    kernel.Generation
		damage func(r *physmem.Region, root uint64) error
		want   []string
	}{
		{"LUO compatible luo-v4", kernel.V72, func(r *physmem.Region, root uint64) error {
			b, err := luoBlob(r, root)
			if err == nil {
				b[5] = '4'
			}
			return err
		}, []string{`LUO blob compatible "luo-v4", want "luo-v5"`, "the 7.2 kernel panics at boot"}},
		{"session block count 0", kernel.V72, func(r *physmem.Region, root uint64) error {
			s, err := ser(r, root)
			if err == nil {
				err = put(r, s.SessionsPA+8, 0)
			}
			return err
		}, []string{"count 0, want 1 to 51", "the 7.2 kernel panics at boot"}},
		{"session chain loops", kernel.V72, func(r *physmem.Region, root uint64) error {
			s, err := ser(r, root)
			if err == nil {
				err = put(r, s.SessionsPA, s.SessionsPA)
			}
			return err
		}, []string{"loops back", "the 7.2 kernel panics at boot"}},
		{"file count", kernel.V72, func(r *physmem.Region, root uint64) error {
			s, err := ser(r, root)
			if err == nil {
				err = put(r, s.SessionsPA+luo.BlockHeaderSize+72, 9)
			}
			return err
		}, []string{"in its entry (EINVAL)", "fails the first open of /dev/liveupdate"}},
		{"flbs_pa cleared", kernel.V72, func(r *physmem.Region, root uint64) error {
			blob, err := luoBlob(r, root)
			if err == nil {
				binary.LittleEndian.PutUint64(blob[24:], 0)
			}
			return err
		}, []string{"flbs_pa is 0", "the 7.2 kernel does not find the FLB"}},
		{"kexec count", kernel.V72, func(r *physmem.Region, root uint64) error {
			in, err := kho.ReadIncoming(r, root)
			if err != nil {
				return err
			}
			pa, err := in.Subtree(kho.KexecMetadataName)
			if err != nil {
				return err
			}
			b, err := r.Bytes(pa+4+kho.ReleaseLen, 4)
			if err == nil {
				binary.LittleEndian.PutUint32(b, 7)
			}
			return err
		}, []string{"kexec_count 7, want 1"}},
		{"luo_ser unpreserved", kernel.LUOv2, func(r *physmem.Region, root uint64) error {
			in, err := kho.ReadIncoming(r, root)
			if err != nil {
				return err
			}
			fdtPA, err := in.Subtree(luo.FDTKHOEntryName)
			if err != nil {
				return err
			}
			blob, err := r.Bytes(fdtPA, 4096)
			if err != nil {
				return err
			}
			i := bytes.Index(blob, []byte("luo-abi-header"))
			if i < 0 {
				return errors.New("no luo-abi-header string")
			}
			// the property's value: the only 8-byte value in the struct block
			t, _, err := in.SubtreeFDT(luo.FDTKHOEntryName)
			if err != nil {
				return err
			}
			pa, _ := t.Root.U64(luo.FDTABIHeader)
			var le [8]byte
			binary.LittleEndian.PutUint64(le[:], pa)
			j := bytes.Index(blob, le[:])
			if j < 0 {
				return errors.New("luo-abi-header value not found")
			}
			binary.LittleEndian.PutUint64(blob[j:], r.End()-4096)
			return nil
		}, []string{"luo_ser", "not in the preserved-memory map", "a luo-v2 kernel dereferences"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			damage := func(r *physmem.Region, root uint64) (string, error) { return tt.name, tt.damage(r, root) }
			outs, log, _ := chainABI(t, lookup(t, "default"), 2, []kernel.Generation{tt.abi}, "", damage)
			if len(outs) != 2 || outs[1].OK {
				t.Fatalf("damage not reported:\n%s", log)
			}
			for _, s := range tt.want {
				if !strings.Contains(log, s) {
					t.Errorf("log lacks %q:\n%s", s, log)
				}
			}
			validKTAP(t, log)
		})
	}
}

// TestGenerations_RandomFlipsNeverPanic damages luo-v2 and 7.2 images one
// random bit at a time, in the preserved blocks and in the pages of the
// memory map, and runs the next boot: it may fail, but never panics, and
// its KTAP stays valid.
func TestGenerations_RandomFlipsNeverPanic(t *testing.T) {
	for _, abi := range []kernel.Generation{kernel.LUOv2, kernel.V72} {
		t.Run(string(abi), func(t *testing.T) {
			mem := make([]byte, 16<<20)
			r, _ := physmem.New(testBase, mem)
			var out bytes.Buffer
			sc := lookup(t, "sharing")
			o := Run(Config{Region: r, Scenario: sc, In: Handover{Boot: 1}, Boots: 2, Out: &out, ABI: abi})
			if !o.OK {
				t.Fatalf("boot 1 failed:\n%s", out.String())
			}
			in, err := kho.ReadIncoming(r, o.Next.RootPA)
			if err != nil {
				t.Fatal(err)
			}
			var pages []uint64
			for _, b := range in.Blocks() {
				for pa := b.PA; pa < b.PA+b.Size(); pa += 4096 {
					pages = append(pages, pa)
				}
			}
			pages = append(pages, mapPages(t, r, in)...)
			clean := slices.Clone(mem)
			rng := rand.New(rand.NewPCG(7, uint64(len(abi))))
			detected := 0
			for range 80 {
				copy(mem, clean)
				// headers and first entries live at the start of a page
				pa := pages[rng.IntN(len(pages))] + uint64(rng.IntN(256))
				mem[pa-testBase] ^= 1 << rng.IntN(8)
				log := bytes.NewBufferString(out.String()) // boot 1's KTAP, with the header
				r2, _ := physmem.New(testBase, mem)
				o2 := Run(Config{Region: r2, Scenario: sc, In: o.Next, Boots: 2, Out: log, ABI: abi})
				if !o2.OK {
					detected++
				}
				if probs := ktap.Validate(strings.NewReader(log.String())); len(probs) != 0 {
					t.Fatalf("flip at %#x: invalid KTAP %v\n%s", pa, probs, log.String())
				}
			}
			if detected == 0 {
				t.Fatal("no flip was detected: the readers check nothing")
			}
		})
	}
}

// mapPages lists the pages of the preserved-memory map itself, which are
// not preserved: the chunks and bitmaps of kho-v1, the radix nodes of kho-v4.
func mapPages(t *testing.T, r *physmem.Region, in *kho.Incoming) []uint64 {
	t.Helper()
	mapPA, _ := in.Root().Root.U64(kho.PropMemoryMap)
	page := func(pa uint64) []byte {
		b, err := r.Bytes(pa, 4096)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var out []uint64
	if in.Compatible() == kho.Compatible {
		for pa := mapPA; pa != 0; {
			c := page(pa)
			out = append(out, pa)
			for i := range binary.LittleEndian.Uint32(c[12:]) {
				out = append(out, binary.LittleEndian.Uint64(c[16+16*i+8:]))
			}
			pa = binary.LittleEndian.Uint64(c)
		}
		return out
	}
	var walk func(pa uint64, level int)
	walk = func(pa uint64, level int) {
		out = append(out, pa)
		if level == 0 {
			return
		}
		table := page(pa)
		for i := range 512 {
			if next := binary.LittleEndian.Uint64(table[i*8:]); next != 0 {
				walk(next, level-1)
			}
		}
	}
	walk(mapPA, kho.RadixLevels)
	return out
}

// TestGenerations_ReadABIMatches: with --read-abi 7.0 a boot that writes 7.2
// still reads the 7.0 handover before it; the next boot, expecting 7.0
// again, refuses the 7.2 one.
func TestGenerations_ReadABIMatches(t *testing.T) {
	outs, log, _ := chainABI(t, lookup(t, "default"), 3, []kernel.Generation{kernel.V70, kernel.V72}, kernel.V70, nil)
	if len(outs) != 3 || !outs[1].OK || outs[2].OK || !strings.Contains(log, "not ok 2 the 7.0 kernel reads the 7.2 handover") {
		t.Fatalf("want boot 2 to read 7.0 and write 7.2, boot 3 to refuse it:\n%s", log)
	}
}

package sim

import (
	"fmt"
	"github.com/kho-sim/kho-sim/pkg/meta"
	"io"
	"strings"
	"testing"

	"github.com/kho-sim/kho-sim/internal/payload"
	"github.com/kho-sim/kho-sim/internal/scenario"
	"github.com/kho-sim/kho-sim/pkg/flb"
	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/luo"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// scaleRegion is the region of the scale benchmark: 1 GiB.
const scaleRegion = 1 << 30

// maxFLBPayload is the largest payload one FLB can hand over: kho-sim
// allocates it with its header in one kho_alloc_preserve, which refuses
// more than 2^MaxPageOrder pages (E2BIG).
const maxFLBPayload = physmem.PageSize<<kho.MaxPageOrder - payload.HeaderSize

// scaleCase is one point of the sweep: flbs FLBs of flbPayload bytes each,
// linked to one handler, and sessions sessions of files files each.
type scaleCase struct {
	name            string
	flbs            int
	flbPayload      uint64
	sessions, files int
	filePayload     uint64
}

func (c scaleCase) payloadBytes() uint64 {
	return uint64(c.flbs)*c.flbPayload + uint64(c.sessions*c.files)*c.filePayload
}

// yaml is the case as a scenario: boot 1 preserves everything, and every
// later boot retrieves, finishes and preserves it all again, so each boot
// after the first is one whole hop of the kernel's work.
func (c scaleCase) yaml() string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: scale\nsummary: scale benchmark\ncycle: 1\nflbs:\n")
	names := make([]string, c.flbs)
	for i := range names {
		names[i] = fmt.Sprintf("flb-%02d", i)
		fmt.Fprintf(&b, "  - {name: %s, payload: %d}\n", names[i], c.flbPayload)
	}
	fmt.Fprintf(&b, "handlers:\n  - {name: h-v1, flbs: [%s]}\n", strings.Join(names, ", "))
	fmt.Fprintf(&b, "sessions:\n  - name: s\n    copies: %d\n    files:\n      - {token: 1, count: %d, handler: h-v1, payload: %d}\n", c.sessions, c.files, c.filePayload)
	b.WriteString("boots:\n  - steps: [preserve-all]\n  - steps: [retrieve-all, get-incoming-all, finish-all, preserve-all]\n")
	return b.String()
}

// scaleCases sweep one dimension at a time from a small hop (one FLB of
// 4 KiB, one session, one file of 512 bytes) up to the kernel's limits:
// the FLB payload up to maxFLBPayload per FLB and then 63 of those (the
// largest hop that fits twice in the region: the incoming and outgoing
// payloads coexist until the incoming ones are finished), the FLB count
// up to LUO_FLB_MAX, files per session up to one 7.0 file block, sessions
// up to one 7.0 session block.
func scaleCases() []scaleCase {
	base := scaleCase{flbs: 1, flbPayload: 4 << 10, sessions: 1, files: 1, filePayload: 512}
	var out []scaleCase
	add := func(name string, f func(*scaleCase)) {
		c := base
		f(&c)
		c.name = name
		out = append(out, c)
	}
	for _, p := range []uint64{4 << 10, 64 << 10, 1 << 20, maxFLBPayload} {
		add(fmt.Sprintf("flb-payload/1x%s", sizeName(p)), func(c *scaleCase) { c.flbPayload = p })
	}
	for _, n := range []int{4, 16, flb.Max} {
		add(fmt.Sprintf("flb-payload/%dx%s", n, sizeName(maxFLBPayload)), func(c *scaleCase) { c.flbs, c.flbPayload = n, maxFLBPayload })
	}
	for _, n := range []int{4, 16, flb.Max} {
		add(fmt.Sprintf("flbs/%d", n), func(c *scaleCase) { c.flbs = n })
	}
	for _, n := range []int{8, 32, luo.FileMax} {
		add(fmt.Sprintf("files/%d", n), func(c *scaleCase) { c.files = n })
	}
	for _, n := range []int{16, 128, luo.SessionMax} {
		add(fmt.Sprintf("sessions/%d", n), func(c *scaleCase) { c.sessions = n })
	}
	// A scenario declares at most 4096 files: 256 sessions of 16.
	add("sessions/256x16files", func(c *scaleCase) { c.sessions, c.files = 256, 16 })
	return out
}

func sizeName(n uint64) string {
	switch {
	case n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// BenchmarkScaleHop measures one hop (a whole boot after the first:
// incoming checks with every payload's CRC-32, retrieve, finish, preserve
// with fresh payloads, serialize, image) in a 1 GiB region as the FLB
// payload, the FLB count, the files per session and the sessions grow.
// MB/s counts the payload bytes handed over per hop.
//
//	go test -run xxx -bench ScaleHop -benchtime 5x ./internal/sim
func BenchmarkScaleHop(b *testing.B) {
	mem := make([]byte, scaleRegion)
	for _, c := range scaleCases() {
		b.Run(c.name, func(b *testing.B) {
			sc, err := scenario.Parse("scale.yaml", strings.NewReader(c.yaml()))
			if err != nil {
				b.Fatal(err)
			}
			clear(mem)
			r, err := physmem.New(testBase, mem)
			if err != nil {
				b.Fatal(err)
			}
			var log strings.Builder
			first := Run(Config{Region: r, Scenario: sc, In: Handover{Boot: 1}, Boots: meta.MaxBoots, Out: &log})
			if !first.OK {
				b.Fatalf("boot 1 failed:\n%s", log.String())
			}
			in := first.Next
			b.SetBytes(int64(c.payloadBytes()))
			for b.Loop() {
				o := Run(Config{Region: r, Scenario: sc, In: in, Boots: meta.MaxBoots, Out: io.Discard})
				if !o.OK {
					b.Fatalf("boot %d failed", in.Boot)
				}
				in = o.Next
			}
		})
	}
}

// TestScaleCasesRun: the points of the scale sweep up to 16 MiB of payload
// are valid scenarios whose second boot passes (the benchmark checks every
// boot of the larger ones, too slow for -race).
func TestScaleCasesRun(t *testing.T) {
	for _, c := range scaleCases() {
		if c.payloadBytes() > 16<<20 || c.sessions*c.files > luo.SessionMax {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			sc, err := scenario.Parse("scale.yaml", strings.NewReader(c.yaml()))
			if err != nil {
				t.Fatal(err)
			}
			r, err := physmem.New(testBase, make([]byte, 64<<20))
			if err != nil {
				t.Fatal(err)
			}
			in := Handover{Boot: 1}
			for range 2 {
				var log strings.Builder
				o := Run(Config{Region: r, Scenario: sc, In: in, Boots: 3, Out: &log})
				if !o.OK {
					t.Fatalf("boot %d failed:\n%s", in.Boot, log.String())
				}
				in = o.Next
			}
		})
	}
}

// TestScaleFLBPayloadLimit: one byte past maxFLBPayload is refused as the
// kernel refuses an allocation above MAX_PAGE_ORDER, so the sweep's
// largest FLB payload is the kernel's.
func TestScaleFLBPayloadLimit(t *testing.T) {
	c := scaleCase{flbs: 1, flbPayload: maxFLBPayload + 1, sessions: 1, files: 1, filePayload: 512}
	sc, err := scenario.Parse("scale.yaml", strings.NewReader(c.yaml()))
	if err != nil {
		t.Fatal(err)
	}
	r, err := physmem.New(testBase, make([]byte, 64<<20))
	if err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	if o := Run(Config{Region: r, Scenario: sc, In: Handover{Boot: 1}, Boots: 2, Out: &log}); o.OK ||
		!strings.Contains(log.String(), "argument list too long") {
		t.Errorf("an FLB payload of %d bytes: ok %v, want E2BIG:\n%s", c.flbPayload, o.OK, log.String())
	}
}

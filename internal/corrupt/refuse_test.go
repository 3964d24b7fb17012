package corrupt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/kho-sim/kho-sim/pkg/fdt"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// TestApplyRefuses checks that a kind which cannot apply returns an error
// of the right class and leaves every byte of the region as it was.
func TestApplyRefuses(t *testing.T) {
	h := newHandover(t, "default")
	emptyFLBTable := func(t *testing.T, im image) {
		_, page := flbPage(t, im)
		binary.LittleEndian.PutUint64(page[flbCountOff:], 0)
	}
	applyFirst := func(k Kind) func(*testing.T, image) {
		return func(t *testing.T, im image) {
			if _, err := Apply(im.r, im.rootPA, k); err != nil {
				t.Fatal(err)
			}
		}
	}
	cases := []struct {
		name    string
		kind    Kind
		rootPA  uint64 // 0: the image's
		prepare func(*testing.T, image)
		want    error // errors.Is target; nil: any error
	}{
		{name: "unknown kind", kind: "nope", want: ErrUnknownKind},
		{name: "empty table name", kind: FLBNameNUL, prepare: emptyFLBTable, want: ErrNotApplicable},
		{name: "empty table data", kind: FLBDataOutside, prepare: emptyFLBTable, want: ErrNotApplicable},
		{name: "empty table page", kind: PageUnpreserved, prepare: emptyFLBTable, want: ErrNotApplicable},
		{name: "empty table payload", kind: PayloadBitflip, prepare: emptyFLBTable, want: ErrNotApplicable},
		{name: "root outside region", kind: RootCompatible, rootPA: testBase + regionSize, want: physmem.ErrOutOfRegion},
		{name: "root header straddles the end", kind: RootMagic, rootPA: testBase + regionSize - 8, want: physmem.ErrOutOfRegion},
		{name: "root at an empty page", kind: LUOMagic, rootPA: testBase + regionSize - physmem.PageSize},
		{name: "loop twice", kind: MemmapLoop, prepare: applyFirst(MemmapLoop), want: ErrNotApplicable},
		{name: "node removed twice", kind: MissingFLBNode, prepare: applyFirst(MissingFLBNode), want: ErrNotApplicable},
		{name: "header shrunk twice", kind: FLBHeaderSize, prepare: applyFirst(FLBHeaderSize), want: ErrNotApplicable},
		{name: "pgcnt zeroed twice", kind: FLBPgcnt, prepare: applyFirst(FLBPgcnt), want: ErrNotApplicable},
		{name: "flb kind after missing node", kind: FLBCountMax, prepare: applyFirst(MissingFLBNode), want: ErrNotApplicable},
		{name: "luo kind after root magic", kind: LUOCompatible, prepare: applyFirst(RootMagic)},
		{name: "payload kind after data outside", kind: PayloadBitflip, prepare: applyFirst(FLBDataOutside), want: physmem.ErrOutOfRegion},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mem := h.clone()
			im := image{region(t, mem), h.next.RootPA}
			if c.rootPA != 0 {
				im.rootPA = c.rootPA
			}
			if c.prepare != nil {
				c.prepare(t, im)
			}
			before := bytes.Clone(mem)
			desc, err := Apply(im.r, im.rootPA, c.kind)
			if err == nil || desc != "" || (c.want != nil && !errors.Is(err, c.want)) {
				t.Fatalf("Apply = %q, %v; want an error matching %v", desc, err, c.want)
			}
			t.Logf("%v", err)
			if !bytes.Equal(mem, before) {
				t.Error("a refused Apply changed the region")
			}
		})
	}
}

// TestApplyTwice checks kinds that stay applicable keep damaging: a second
// compatible change moves to another wrong string, a second liveupdate
// bump adds 5 again.
func TestApplyTwice(t *testing.T) {
	h := newHandover(t, "default")
	mem := h.clone()
	r := region(t, mem)
	for range 2 {
		for _, k := range []Kind{RootCompatible, LiveupdateNumber} {
			if _, err := Apply(r, h.next.RootPA, k); err != nil {
				t.Fatal(err)
			}
		}
	}
	im := image{r, h.next.RootPA}
	if c, _ := mustParse(t, r, im.rootPA).Root.String("compatible"); c != "kho-v8" {
		t.Errorf("compatible after two changes %q, want kho-v8", c)
	}
	if n, _ := mustParse(t, r, luoFDT(t, im)).Root.U64("liveupdate-number"); n != 11 {
		t.Errorf("liveupdate-number after two bumps %d, want 11", n)
	}
}

// TestWalkMatchesParse checks the offset walker against pkg/fdt on every
// FDT of the image: same nodes, same properties, values at the offsets.
func TestWalkMatchesParse(t *testing.T) {
	h := newHandover(t, "default")
	im := image{region(t, h.clone()), h.next.RootPA}
	for _, name := range []string{"", luoSubtree, metaSubtree} {
		var b *blob
		var err error
		if name == "" {
			b, err = im.root()
		} else {
			b, err = im.sub(name)
		}
		if err != nil {
			t.Fatal(err)
		}
		var nodes, props int
		var visit func(path string, n *fdt.Node)
		visit = func(path string, n *fdt.Node) {
			nodes++
			if _, err := b.node(path); err != nil {
				t.Error(err)
			}
			for _, p := range n.Props {
				props++
				ps, err := b.prop(path, p.Name)
				if err != nil {
					t.Error(err)
					continue
				}
				if got := b.raw[ps.value : ps.value+ps.size]; !bytes.Equal(got, p.Value) {
					t.Errorf("%s %s: walker value % x, parser % x", b.what, propPath(path, p.Name), got, p.Value)
				}
			}
			for _, c := range n.Children {
				visit(joinPath(path, c.Name), c)
			}
		}
		visit("/", b.tree.Root)
		if nodes != len(b.nodes) || props != len(b.props) {
			t.Errorf("%s: walker found %d nodes %d props, parser %d %d", b.what, len(b.nodes), len(b.props), nodes, props)
		}
		for _, n := range b.nodes {
			if be := binary.BigEndian; be.Uint32(b.raw[n.begin:]) != tokenBeginNode || be.Uint32(b.raw[n.end-4:]) != tokenEndNode {
				t.Errorf("%s node %s span [%#x, %#x) is not BEGIN_NODE..END_NODE", b.what, n.path, n.begin, n.end)
			}
		}
	}
}

package corrupt

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/kho-sim/kho-sim/internal/payload"
	"github.com/kho-sim/kho-sim/pkg/flb"
	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/luo"
	"github.com/kho-sim/kho-sim/pkg/meta"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// Names the image is navigated by.
const (
	luoSubtree       = luo.FDTKHOEntryName
	luoSessionNode   = luo.FDTSessionNode
	luoFLBNode       = luo.FDTFLBNode
	luoFLBHeader     = luo.FDTFLBHeader
	luoLiveupdateNum = luo.FDTLiveupdateNum
	metaSubtree      = meta.Name
)

var le = binary.LittleEndian

// image is a handover image in a region, read the way the next boot reads it.
type image struct {
	r      *physmem.Region
	rootPA uint64
}

func (im image) root() (*blob, error) { return readBlob(im.r, im.rootPA, "KHO root FDT") }

// state reads the handover as the next boot would: KHO (kho.ReadIncoming)
// and the LUO state (luo.Decode), which locate everything that is damaged.
func (im image) state() (*luo.Handover, error) {
	in, err := kho.ReadIncoming(im.r, im.rootPA)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", err, ErrNotApplicable)
	}
	return luo.Decode(in, luo.DecodeOptions{}), nil
}

// v4 reports whether the root is 7.2's "kho-v4", whose children hold
// preserved-data and blob-size instead of 7.0's "fdt".
func (im image) v4() (bool, error) {
	root, err := im.root()
	if err != nil {
		return false, err
	}
	return root.tree.Root.IsCompatible(kho.CompatibleV4), nil
}

// child is the address and size (0: an FDT sized by its header) of the
// root's child called name.
func (im image) child(name string) (pa, size uint64, err error) {
	root, err := im.root()
	if err != nil {
		return 0, 0, err
	}
	if !root.tree.Root.IsCompatible(kho.CompatibleV4) {
		pa, err = root.u64("/"+name, kho.PropSubFDT)
		return pa, 0, err
	}
	if pa, err = root.u64("/"+name, kho.PropBlobData); err != nil {
		return 0, 0, err
	}
	if size, err = root.u64("/"+name, kho.PropBlobSize); err != nil {
		return 0, 0, err
	}
	return pa, size, nil
}

// sub reads the root's child FDT called name.
func (im image) sub(name string) (*blob, error) {
	if name == luoSubtree {
		if ser, err := im.luoSer(); err == nil && ser.raw {
			return nil, fmt.Errorf("the LUO state is 7.2's raw %q blob, not an FDT: %w", luo.SerCompatible, ErrNotApplicable)
		}
	}
	pa, _, err := im.child(name)
	if err != nil {
		return nil, err
	}
	return readBlob(im.r, pa, name+" FDT")
}

// luoSerAt is where struct luo_ser lies, which holds the liveupdate
// number and the FLB page's address from the luo-v2 step on: behind the
// LUO FDT's luo-abi-header (luo-v2), or the "LUO" child itself (7.2's raw
// blob, which starts with its compatible).
type luoSerAt struct {
	pa     uint64
	fields [3]uint64 // where liveupdate_num, sessions_pa, flbs_pa lie
	raw    bool      // 7.2: the blob itself, compatible first
}

func (im image) luoSer() (luoSerAt, error) {
	h, err := im.state()
	if err != nil {
		return luoSerAt{}, err
	}
	switch {
	case !h.Readable:
		return luoSerAt{}, fmt.Errorf("no readable LUO state: %w", ErrNotApplicable)
	case h.Ser == nil:
		return luoSerAt{}, fmt.Errorf("LUO FDT is %q, which has no luo_ser: %w", h.Compatible, ErrNotApplicable)
	case !h.Followed:
		return luoSerAt{}, fmt.Errorf("luo_ser at %#x cannot be read: %w", h.Ser.PA, ErrNotApplicable)
	}
	at := luoSerAt{pa: h.Ser.PA, raw: h.In.Compatible() == kho.CompatibleV4}
	for i := range at.fields {
		at.fields[i] = h.Ser.PA + uint64(luo.SerField(h.Generation, i))
	}
	return at, nil
}

// field is the address of the i-th u64 field of struct luo_ser
// (liveupdate_num, sessions_pa, flbs_pa in that order).
func (s luoSerAt) field(i int) uint64 { return s.fields[i] }

func (im image) withRoot(fn func(*blob) ([]edit, error)) ([]edit, error) {
	b, err := im.root()
	if err != nil {
		return nil, err
	}
	return fn(b)
}

func (im image) withSub(name string, fn func(*blob) ([]edit, error)) ([]edit, error) {
	b, err := im.sub(name)
	if err != nil {
		return nil, err
	}
	return fn(b)
}

// badMagic flips the lowest bit of the FDT magic, as a single-bit memory
// error would.
func badMagic(b *blob) ([]edit, error) {
	old := b.raw[hMagic : hMagic+4]
	nu := bytes.Clone(old)
	nu[3] ^= 1
	return []edit{{
		pa: b.at(hMagic), old: bytes.Clone(old), new: nu, what: b.what + " magic",
		from: fmt.Sprintf("%#08x", be.Uint32(old)), to: fmt.Sprintf("%#08x", be.Uint32(nu)),
	}}, nil
}

// truncate sets totalsize to the middle of the struct block, as a blob
// copied or sized short would claim.
func truncate(b *blob) ([]edit, error) {
	offStruct, sizeStruct := be.Uint32(b.raw[hOffStruct:]), be.Uint32(b.raw[hSizeStruct:])
	total := be.Uint32(b.raw[hTotalSize:])
	cut := offStruct + sizeStruct/2&^3
	if sizeStruct < 8 || cut >= total {
		return nil, fmt.Errorf("%s struct block of %d bytes cannot be cut: %w", b.what, sizeStruct, ErrNotApplicable)
	}
	return []edit{u32BE(b.at(hTotalSize), b.raw[hTotalSize:], cut, b.what+" totalsize",
		fmt.Sprint(total), fmt.Sprintf("%d (struct block ends at %d)", cut, offStruct+sizeStruct))}, nil
}

// compatible changes the last character of the node's first compatible
// string in place, keeping its length: "kho-v1" becomes "kho-v9".
func compatible(path string) func(*blob) ([]edit, error) {
	return func(b *blob) ([]edit, error) {
		p, err := b.prop(path, "compatible")
		if err != nil {
			return nil, err
		}
		return lastCharEdit(b.at(p.value), b.raw[p.value:p.value+p.size], fmt.Sprintf("%s %s compatible", b.what, path))
	}
}

// lastCharEdit changes the last character of the NUL-terminated string
// at the start of v (at pa) to '9' ('8' if it already is), keeping its
// length: "kho-v1" becomes "kho-v9".
func lastCharEdit(pa uint64, v []byte, what string) ([]edit, error) {
	n := bytes.IndexByte(v, 0)
	if n < 1 {
		return nil, fmt.Errorf("%s %q is not a string: %w", what, v, ErrNotApplicable)
	}
	last := byte('9')
	if v[n-1] == last {
		last = '8'
	}
	nu := bytes.Clone(v[:n])
	nu[n-1] = last
	return []edit{{
		pa: pa + uint64(n) - 1, old: bytes.Clone(v[n-1 : n]), new: nu[n-1:],
		what: what, from: fmt.Sprintf("%q", v[:n]), to: fmt.Sprintf("%q", nu),
	}}, nil
}

// nopNode overwrites a node, FDT_BEGIN_NODE through FDT_END_NODE, with
// FDT_NOP tokens: the blob stays valid and the node is gone, as
// fdt_nop_node leaves it.
func nopNode(path string) func(*blob) ([]edit, error) {
	return func(b *blob) ([]edit, error) {
		n, err := b.node(path)
		if err != nil {
			return nil, err
		}
		if path == "/" {
			return nil, fmt.Errorf("%s: the root node cannot be removed: %w", b.what, ErrNotApplicable)
		}
		old := b.raw[n.begin:n.end]
		nu := make([]byte, len(old))
		for i := 0; i+4 <= len(nu); i += 4 {
			be.PutUint32(nu[i:], tokenNop)
		}
		return []edit{{
			pa: b.at(n.begin), old: bytes.Clone(old), new: nu, what: fmt.Sprintf("%s node %s", b.what, path),
			from: fmt.Sprintf("%d bytes of tokens", len(old)), to: fmt.Sprintf("%d FDT_NOP tokens", len(nu)/4),
		}}, nil
	}
}

// shrinkU64 turns an 8-byte property into a 4-byte one holding the low half,
// followed by an FDT_NOP where the high half was, so the blob stays valid.
func shrinkU64(path, name string) func(*blob) ([]edit, error) {
	return func(b *blob) ([]edit, error) {
		p, err := b.prop(path, name)
		if err != nil {
			return nil, err
		}
		if p.size != 8 {
			return nil, fmt.Errorf("%s %s is %d bytes, not 8: %w", b.what, propPath(path, name), p.size, ErrNotApplicable)
		}
		what := b.what + " " + propPath(path, name)
		hi := b.raw[p.value+4 : p.value+8]
		var nop [4]byte
		be.PutUint32(nop[:], tokenNop)
		return []edit{
			u32BE(b.at(p.tok+4), b.raw[p.tok+4:], 4, what+" length", "8", "4"),
			{pa: b.at(p.value + 4), old: bytes.Clone(hi), new: nop[:], what: what + " high half",
				from: fmt.Sprintf("% x", hi), to: "FDT_NOP"},
		}, nil
	}
}

// addU64 adds delta to a u64 property.
func addU64(path, name string, delta uint64) func(*blob) ([]edit, error) {
	return func(b *blob) ([]edit, error) {
		v, err := b.u64(path, name)
		if err != nil {
			return nil, err
		}
		p, _ := b.prop(path, name) // found by u64
		return []edit{u64LE(b.at(p.value), b.raw[p.value:], v+delta, b.what+" "+propPath(path, name))}, nil
	}
}

// flbPage is the FLB page: what the LUO FDT's luo-flb-header points to
// (7.0), or luo_ser's flbs_pa (luo-v2, 7.2).
func (im image) flbPage() (uint64, []byte, error) {
	h, err := im.state()
	if err != nil {
		return 0, nil, err
	}
	if h.FLBsPA == 0 {
		return 0, nil, fmt.Errorf("no FLB page was handed over: %w", ErrNotApplicable)
	}
	page, err := im.r.Bytes(h.FLBsPA, luo.FLBPageSize)
	if err != nil {
		return 0, nil, fmt.Errorf("FLB page: %w", err)
	}
	return h.FLBsPA, page, nil
}

// planLiveupdateNumber adds 5 to the liveupdate number, wherever the
// generation keeps it.
func planLiveupdateNumber(im image) ([]edit, error) {
	if ser, err := im.luoSer(); err == nil {
		cur, _ := im.r.Bytes(ser.field(0), 8) // inside luo_ser, checked by luoSer
		return []edit{u64LE(ser.field(0), cur, le.Uint64(cur)+5, "luo_ser liveupdate_num")}, nil
	}
	return im.withSub(luoSubtree, addU64("/", luoLiveupdateNum, 5))
}

// planLUOCompatible changes the last character of the LUO state's
// compatible: the LUO FDT's (7.0, luo-v2) or 7.2's blob's "luo-v5".
func planLUOCompatible(im image) ([]edit, error) {
	ser, err := im.luoSer()
	if err != nil || !ser.raw {
		return im.withSub(luoSubtree, compatible("/"))
	}
	v, _ := im.r.Bytes(ser.pa, luo.SerCompatLen) // inside luo_ser
	return lastCharEdit(ser.pa, v, "LUO blob compatible")
}

// firstFLB is entry 0 of the FLB table; the header must list at least one.
func (im image) firstFLB() (uint64, []byte, flb.Entry, error) {
	pa, page, err := im.flbPage()
	if err != nil {
		return 0, nil, flb.Entry{}, err
	}
	_, count, _ := flb.ReadHeader(page) // page is a whole page
	if count == 0 {
		return 0, nil, flb.Entry{}, fmt.Errorf("FLB page %#x lists no FLB: %w", pa, ErrNotApplicable)
	}
	e, _ := flb.ReadEntry(page, 0) // entry 0 lies in any page
	return pa, page, e, nil
}

func setHeader(field string, off int, v uint64) func(im image) ([]edit, error) {
	return func(im image) ([]edit, error) {
		pa, page, err := im.flbPage()
		if err != nil {
			return nil, err
		}
		return []edit{u64LE(pa+uint64(off), page[off:], v, "FLB header "+field)}, nil
	}
}

const (
	flbPgcntOff = 0
	flbCountOff = 8
	flbDataOff  = flb.HeaderSize + flb.NameLen
)

func planCountMax(im image) ([]edit, error) {
	return setHeader("count", flbCountOff, flb.Max+1)(im)
}

// planCountPgcnt claims 100 entries in one page: the table would run 2416
// bytes past it.
func planCountPgcnt(im image) ([]edit, error) {
	a, err := setHeader("pgcnt", flbPgcntOff, 1)(im)
	if err != nil {
		return nil, err
	}
	c, err := setHeader("count", flbCountOff, 100)(im)
	return append(a, c...), err
}

func planPgcnt(im image) ([]edit, error) {
	return setHeader("pgcnt", flbPgcntOff, 0)(im)
}

// planNameNUL replaces every NUL of the first entry's name with 'x', so the
// name runs into the data field as strcmp reads it.
func planNameNUL(im image) ([]edit, error) {
	pa, page, e, err := im.firstFLB()
	if err != nil {
		return nil, err
	}
	old := page[flb.HeaderSize : flb.HeaderSize+flb.NameLen]
	nu := bytes.Clone(old)
	for i, c := range nu {
		if c == 0 {
			nu[i] = 'x'
		}
	}
	name, _ := e.NameString()
	return []edit{{
		pa: pa + flb.HeaderSize, old: bytes.Clone(old), new: nu, what: "FLB entry 0 name",
		from: fmt.Sprintf("%q", name), to: fmt.Sprintf("%q (no NUL)", nu),
	}}, nil
}

// planDataOutside points the first entry's data at the first page after the
// region (or the last before it, for a region ending at the top of memory).
func planDataOutside(im image) ([]edit, error) {
	pa, page, e, err := im.firstFLB()
	if err != nil {
		return nil, err
	}
	outside := im.r.End()
	if outside < im.r.Base() || outside == 0 {
		if im.r.Base() < physmem.PageSize {
			return nil, fmt.Errorf("the region spans all of memory, nothing lies outside it: %w", ErrNotApplicable)
		}
		outside = im.r.Base() - physmem.PageSize
	}
	name, _ := e.NameString()
	ed := u64LE(pa+flbDataOff, page[flbDataOff:], outside, fmt.Sprintf("FLB entry 0 (%q) data", name))
	ed.to += fmt.Sprintf(" (outside region %#x-%#x)", im.r.Base(), im.r.End()-1)
	return []edit{ed}, nil
}

// firstPayload is the first FLB's payload: its address, name and size as
// its header records them. The size is checked against the region.
func (im image) firstPayload() (uint64, string, uint64, error) {
	_, _, e, err := im.firstFLB()
	if err != nil {
		return 0, "", 0, err
	}
	name, _ := e.NameString()
	hdr, err := im.r.Bytes(e.Data, payload.HeaderSize)
	if err != nil {
		return 0, "", 0, fmt.Errorf("FLB %q payload header: %w", name, err)
	}
	info, err := payload.ReadHeader(hdr)
	if err != nil {
		return 0, "", 0, fmt.Errorf("FLB %q data %#x holds no kho-sim payload (%v): %w", name, e.Data, err, ErrNotApplicable)
	}
	size := info.Size
	if !im.r.Contains(e.Data+payload.HeaderSize, size) {
		return 0, "", 0, fmt.Errorf("FLB %q payload of %d bytes at %#x runs outside the region: %w", name, size, e.Data, ErrNotApplicable)
	}
	return e.Data, name, size, nil
}

// planBitflip flips bit 4 of the body's middle byte.
func planBitflip(im image) ([]edit, error) {
	pa, name, size, err := im.firstPayload()
	if err != nil {
		return nil, err
	}
	if size == 0 {
		return nil, fmt.Errorf("FLB %q payload has an empty body: %w", name, ErrNotApplicable)
	}
	at := pa + payload.HeaderSize + size/2
	old, _ := im.r.Bytes(at, 1) // inside the body checked above
	return []edit{{
		pa: at, old: bytes.Clone(old), new: []byte{old[0] ^ 0x10},
		what: fmt.Sprintf("FLB %q payload body byte %#x", name, size/2),
		from: fmt.Sprintf("%#02x", old[0]), to: fmt.Sprintf("%#02x", old[0]^0x10),
	}}, nil
}

func planMemmapLoop(im image) ([]edit, error) {
	h, err := im.state()
	if err != nil {
		return nil, err
	}
	if h.In.Compatible() == kho.CompatibleV4 {
		return nil, fmt.Errorf("7.2's memory map is a radix tree of fixed depth, no chunk list that could loop: %w", ErrNotApplicable)
	}
	pages := h.In.MapPages() // the first chunk comes first
	if len(pages) == 0 {
		return nil, fmt.Errorf("KHO root FDT has no memory map: %w", ErrNotApplicable)
	}
	first, _ := im.r.Bytes(pages[0], 8) // read by kho.ReadIncoming
	return []edit{u64LE(pages[0], first, pages[0], "memory-map chunk next")}, nil
}

// planUnpreserve clears the bit of the preserved block that holds the first
// FLB's payload header, so the next boot finds that page missing.
func planUnpreserve(im image) ([]edit, error) {
	pa, name, _, err := im.firstPayload()
	if err != nil {
		return nil, err
	}
	h, err := im.state()
	if err != nil {
		return nil, err
	}
	mb, ok, err := h.In.FindMapBit(pa)
	if err != nil {
		return nil, fmt.Errorf("memory map: %w: %w", err, ErrNotApplicable)
	}
	if !ok {
		return nil, fmt.Errorf("no memory-map bit covers FLB %q payload %#x: %w", name, pa, ErrNotApplicable)
	}
	what := "memory-map bitmap"
	if h.In.Compatible() == kho.CompatibleV4 {
		what = "radix bitmap"
	}
	at := mb.BitmapPA + mb.Bit/8
	bm, _ := im.r.Bytes(at, 1) // read by FindMapBit
	mask := byte(1) << (mb.Bit % 8)
	return []edit{{
		pa: at, old: []byte{bm[0]}, new: []byte{bm[0] &^ mask},
		what: fmt.Sprintf("%s %#x bit %d (order-%d block %#x holding FLB %q payload %#x)",
			what, mb.BitmapPA, mb.Bit, mb.Block.Order, mb.Block.PA, name, pa),
		from: fmt.Sprintf("%#02x", bm[0]), to: fmt.Sprintf("%#02x", bm[0]&^mask),
	}}, nil
}

// u64LE is an edit setting the little-endian u64 at the start of cur.
func u64LE(pa uint64, cur []byte, v uint64, what string) edit {
	nu := le.AppendUint64(nil, v)
	old := le.Uint64(cur)
	return edit{pa: pa, old: bytes.Clone(cur[:8]), new: nu, what: what, from: hexOrDec(old), to: hexOrDec(v)}
}

// u32BE is an edit setting the big-endian u32 (an FDT header or token
// field) at the start of cur.
func u32BE(pa uint64, cur []byte, v uint32, what, from, to string) edit {
	return edit{pa: pa, old: bytes.Clone(cur[:4]), new: be.AppendUint32(nil, v), what: what, from: from, to: to}
}

// hexOrDec shows counts in decimal and addresses in hex.
func hexOrDec(v uint64) string {
	if v < 1<<16 {
		return fmt.Sprint(v)
	}
	return fmt.Sprintf("%#x", v)
}

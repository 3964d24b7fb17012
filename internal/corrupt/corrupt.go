package corrupt

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// Kind names one way of damaging a handover image.
type Kind string

// The kinds of damage, one per check the next boot must make.
const (
	RootMagic         Kind = "root-magic"
	RootTruncated     Kind = "root-truncated"
	LUOMagic          Kind = "luo-magic"
	LUOTruncated      Kind = "luo-truncated"
	RootCompatible    Kind = "root-compatible"
	LUOCompatible     Kind = "luo-compatible"
	SessionCompatible Kind = "session-compatible"
	FLBCompatible     Kind = "flb-compatible"
	MetaCompatible    Kind = "meta-compatible"
	MissingFLBNode    Kind = "missing-flb-node"
	FLBHeaderSize     Kind = "flb-header-size"
	FLBCountMax       Kind = "flb-count-max"
	FLBCountPgcnt     Kind = "flb-count-pgcnt"
	FLBPgcnt          Kind = "flb-pgcnt"
	FLBNameNUL        Kind = "flb-name-nul"
	FLBDataOutside    Kind = "flb-data-outside"
	PageUnpreserved   Kind = "page-unpreserved"
	PayloadBitflip    Kind = "payload-bitflip"
	MemmapLoop        Kind = "memmap-loop"
	LiveupdateNumber  Kind = "liveupdate-number"
)

var (
	// ErrUnknownKind means Apply or ParseKind was given a name that is not
	// one of Kinds.
	ErrUnknownKind = errors.New("corrupt: unknown kind")
	// ErrNotApplicable means the image lacks what the kind damages, such as
	// an FLB entry when no FLB was handed over.
	ErrNotApplicable = errors.New("kind does not apply to this image")
)

// kindInfo ties a kind to its description and to the function that plans
// its edits.
type kindInfo struct {
	kind     Kind
	describe string
	plan     func(im image) ([]edit, error)
}

// table lists every kind. It is built per call so the package holds no
// mutable state.
func table() []kindInfo {
	return []kindInfo{
		{RootMagic, "KHO root FDT magic has one bit flipped", func(im image) ([]edit, error) { return im.withRoot(badMagic) }},
		{RootTruncated, "KHO root FDT totalsize cut to the middle of its struct block", func(im image) ([]edit, error) { return im.withRoot(truncate) }},
		{LUOMagic, "LUO FDT magic has one bit flipped", func(im image) ([]edit, error) { return im.withSub(luoSubtree, badMagic) }},
		{LUOTruncated, "LUO FDT totalsize cut to the middle of its struct block", func(im image) ([]edit, error) { return im.withSub(luoSubtree, truncate) }},
		{RootCompatible, `KHO root compatible "kho-v1" (7.2: "kho-v4") changed in place (last character)`, func(im image) ([]edit, error) { return im.withRoot(compatible("/")) }},
		{LUOCompatible, `LUO FDT compatible "luo-v1" (or luo-v2's, or 7.2's blob's "luo-v5") changed in place (last character)`, planLUOCompatible},
		{SessionCompatible, `luo-session node compatible "luo-session-v2" changed in place (last character)`, func(im image) ([]edit, error) { return im.withSub(luoSubtree, compatible("/"+luoSessionNode)) }},
		{FLBCompatible, `luo-flb node compatible "luo-flb-v1" changed in place (last character)`, func(im image) ([]edit, error) { return im.withSub(luoSubtree, compatible("/"+luoFLBNode)) }},
		{MetaCompatible, `kho-sim metadata compatible "kho-sim-v1" changed in place (last character)`, func(im image) ([]edit, error) { return im.withSub(metaSubtree, compatible("/")) }},
		{MissingFLBNode, "luo-flb node removed from the LUO FDT (its tokens overwritten with FDT_NOP)", func(im image) ([]edit, error) { return im.withSub(luoSubtree, nopNode("/"+luoFLBNode)) }},
		{FLBHeaderSize, "luo-flb-header property shrunk from 8 to 4 bytes (an FDT_NOP fills the rest)", func(im image) ([]edit, error) { return im.withSub(luoSubtree, shrinkU64("/"+luoFLBNode, luoFLBHeader)) }},
		{FLBCountMax, "FLB header count set to LUO_FLB_MAX+1 (64)", planCountMax},
		{FLBCountPgcnt, "FLB header pgcnt 1 with count 100, more entries than one page holds", planCountPgcnt},
		{FLBPgcnt, "FLB header pgcnt set to 0", planPgcnt},
		{FLBNameNUL, "first FLB entry's name fills all 48 bytes with no NUL", planNameNUL},
		{FLBDataOutside, "first FLB entry's data points outside the region", planDataOutside},
		{PageUnpreserved, "memory-map bit (7.2: radix-tree bit) of the block holding the first FLB's payload cleared", planUnpreserve},
		{PayloadBitflip, "one bit flipped in the first FLB's payload body", planBitflip},
		{MemmapLoop, "first memory-map chunk's next points to itself", planMemmapLoop},
		{LiveupdateNumber, "LUO FDT liveupdate-number (luo_ser's liveupdate_num from luo-v2 on) increased by 5", planLiveupdateNumber},
	}
}

func lookup(k Kind) (kindInfo, bool) {
	if seed, ok := bitflipSeed(k); ok {
		return kindInfo{k, fmt.Sprintf("one bit of the 7.2 handover's root FDT, LUO blob, session or file blocks, FLB page or radix tree, drawn with seed %d", seed),
			func(im image) ([]edit, error) { return planSeededFlip(im, seed) }}, true
	}
	for _, ki := range table() {
		if ki.kind == k {
			return ki, true
		}
	}
	return kindInfo{}, false
}

// Kinds lists every kind, sorted by name; the seeded bit flips
// (BitflipPrefix) are not listed.
func Kinds() []Kind {
	var out []Kind
	for _, ki := range table() {
		out = append(out, ki.kind)
	}
	slices.Sort(out)
	return out
}

// Describe says in one line what the kind damages; "" for an unknown kind.
func (k Kind) Describe() string {
	ki, _ := lookup(k)
	return ki.describe
}

// ParseKind returns the kind called name, or ErrUnknownKind listing them all.
func ParseKind(name string) (Kind, error) {
	if _, ok := lookup(Kind(name)); ok {
		return Kind(name), nil
	}
	var names []string
	for _, k := range Kinds() {
		names = append(names, string(k))
	}
	return "", fmt.Errorf("%w %q (kinds: %s)", ErrUnknownKind, name, strings.Join(names, ", "))
}

// Apply damages the handover image whose KHO root FDT is at rootPA in
// place and returns a one-line description of every byte range it changed,
// with the old and new values. It reads the image as the next boot would and
// writes only through r.Bytes, never outside the region; when the image
// lacks what k damages it changes nothing and returns an error wrapping
// ErrNotApplicable.
func Apply(r *physmem.Region, rootPA uint64, k Kind) (string, error) {
	edits, err := plan(r, rootPA, k)
	if err != nil {
		return "", err
	}
	if err := commit(r, edits); err != nil {
		return "", fmt.Errorf("corrupt %s: %w", k, err)
	}
	return describe(k, edits), nil
}

// plan works out the edits of kind k without writing anything.
func plan(r *physmem.Region, rootPA uint64, k Kind) ([]edit, error) {
	ki, ok := lookup(k)
	if !ok {
		_, err := ParseKind(string(k))
		return nil, err
	}
	edits, err := ki.plan(image{r, rootPA})
	if err != nil {
		return nil, fmt.Errorf("corrupt %s: %w", k, err)
	}
	edits = slices.DeleteFunc(edits, func(e edit) bool { return string(e.old) == string(e.new) })
	if len(edits) == 0 {
		return nil, fmt.Errorf("corrupt %s: the image already holds the damaged value: %w", k, ErrNotApplicable)
	}
	return edits, nil
}

// edit replaces len(new) bytes at pa.
type edit struct {
	pa       uint64
	old, new []byte
	what     string // which field, for the description
	from, to string // old and new value as a reader would name them
}

// commit writes every edit, after making sure each one lies in the region,
// so a failure leaves the image untouched.
func commit(r *physmem.Region, edits []edit) error {
	dst := make([][]byte, len(edits))
	for i, e := range edits {
		b, err := r.Bytes(e.pa, uint64(len(e.new)))
		if err != nil {
			return fmt.Errorf("%s: %w", e.what, err)
		}
		dst[i] = b
	}
	for i, e := range edits {
		copy(dst[i], e.new)
	}
	return nil
}

func describe(k Kind, edits []edit) string {
	parts := make([]string, len(edits))
	for i, e := range edits {
		parts[i] = fmt.Sprintf("%s at %#x+%d: %s -> %s", e.what, e.pa, len(e.new), e.from, e.to)
	}
	return fmt.Sprintf("%s: %s", k, strings.Join(parts, "; "))
}

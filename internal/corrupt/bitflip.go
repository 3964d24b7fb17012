package corrupt

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"github.com/kho-sim/kho-sim/pkg/flb"
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/luo"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// BitflipPrefix opens the seeded bit-flip kinds, "bitflip:SEED": one bit of
// a 7.2 handover's pages, chosen by SEED (see PickFlip).
const BitflipPrefix = "bitflip:"

// Bitflip is the kind that flips the bit PickFlip chooses with seed.
func Bitflip(seed uint64) Kind { return Kind(BitflipPrefix + strconv.FormatUint(seed, 10)) }

// bitflipSeed returns the seed of a "bitflip:SEED" kind.
func bitflipSeed(k Kind) (uint64, bool) {
	s, ok := strings.CutPrefix(string(k), BitflipPrefix)
	if !ok {
		return 0, false
	}
	seed, err := strconv.ParseUint(s, 10, 64)
	return seed, err == nil
}

// Role is what a page of a 7.2 handover holds.
type Role string

// The roles of the pages the next 7.2 kernel reads, in the order PickFlip
// draws from.
const (
	RoleRoot    Role = "root-fdt"      // the KHO root FDT
	RoleLUO     Role = "luo-blob"      // struct luo_ser
	RoleSession Role = "session-block" // a luo_session_ser block
	RoleFile    Role = "file-block"    // a luo_file_ser block
	RoleFLB     Role = "flb-page"      // luo_flb_header_ser and its entries
	RoleRadix   Role = "radix-node"    // a table or bitmap of the memory map
)

// Roles lists every role in draw order.
func Roles() []Role {
	return []Role{RoleRoot, RoleLUO, RoleSession, RoleFile, RoleFLB, RoleRadix}
}

// Target is a structure of a 7.2 handover that a flip may hit: Live bytes
// from PA are what the kernel reads there (an FDT's totalsize, a blob's
// size, a block's header and used entries, a radix node up to its last
// non-zero byte).
type Target struct {
	Role Role
	PA   uint64
	Live uint64
}

// Flip is one bit of a handover: bit Bit of the byte at Target.PA+Offset.
type Flip struct {
	Target Target
	Offset uint64
	Bit    uint
}

// PA is the address of the flipped byte.
func (f Flip) PA() uint64 { return f.Target.PA + f.Offset }

func (f Flip) String() string {
	return fmt.Sprintf("%s %#x+%#x bit %d", f.Target.Role, f.Target.PA, f.Offset, f.Bit)
}

// Targets reads the 7.2 handover whose root FDT is at rootPA strictly
// (luo.Read), as the next kernel reads it, and lists what a flip may hit.
// kho-sim's own "kho-sim" child and the kexec-metadata are left out: the
// first is no kernel's, the second only names the previous release.
func Targets(r *physmem.Region, rootPA uint64) ([]Target, error) {
	h, err := luo.Read(r, rootPA)
	if err != nil {
		return nil, fmt.Errorf("not a 7.2 handover: %w: %w", err, ErrNotApplicable)
	}
	if h.Generation != kernel.V72 {
		return nil, fmt.Errorf("a %s handover, not 7.2: %w", h.Generation, ErrNotApplicable)
	}
	out := []Target{{RoleRoot, h.In.RootPA(), h.In.RootSize()}}
	if h.Ser != nil {
		out = append(out, Target{RoleLUO, h.Ser.PA, luo.SerSize})
	}
	if t := h.Sessions; t != nil {
		for _, b := range t.Blocks {
			out = append(out, blockTarget(RoleSession, b, luo.SessionEntrySize, luo.SessionsPerBlock))
		}
		for _, s := range t.Sessions {
			for _, b := range s.FileBlocks {
				out = append(out, blockTarget(RoleFile, b, luo.FileEntrySize, luo.FilesPerBlock))
			}
		}
	}
	if h.FLB != nil {
		out = append(out, Target{RoleFLB, h.FLB.PA, flb.HeaderSize + uint64(len(h.FLB.Entries))*flb.EntrySize})
	}
	for _, pa := range h.In.MapPages() {
		page, err := r.Bytes(pa, physmem.PageSize)
		if err != nil {
			return nil, fmt.Errorf("radix node %#x: %w", pa, err)
		}
		live := uint64(physmem.PageSize)
		for live > 1 && page[live-1] == 0 {
			live--
		}
		out = append(out, Target{RoleRadix, pa, live})
	}
	return out, nil
}

// blockTarget is a session or file block: its {next, count} header and the
// count entries it holds (count bounded by the block, as luo.Read checked).
func blockTarget(role Role, b luo.Block, entry, capacity uint64) Target {
	return Target{role, b.PA, luo.BlockHeaderSize + min(b.Count, capacity)*entry}
}

// PickFlip chooses one bit of targets with a PCG generator seeded by seed
// (math/rand/v2's PCG is specified, so a seed names the same bit in every
// build): a role uniformly among those present, a structure of that role
// uniformly (in address order), a byte uniformly among its live bytes, a bit uniformly. Roles
// are drawn evenly so that the few-page structures (the LUO blob, the FLB
// page) are hit as often as the many radix nodes.
func PickFlip(targets []Target, seed uint64) (Flip, error) {
	byRole := map[Role][]Target{}
	var present []Role
	for _, t := range targets {
		if t.Live == 0 {
			continue
		}
		if byRole[t.Role] == nil {
			present = append(present, t.Role)
		}
		byRole[t.Role] = append(byRole[t.Role], t)
	}
	if len(present) == 0 {
		return Flip{}, fmt.Errorf("no structure to flip a bit in: %w", ErrNotApplicable)
	}
	// Draw in Roles' order, whatever order targets came in.
	ordered := present[:0:0]
	for _, role := range Roles() {
		if byRole[role] != nil {
			ordered = append(ordered, role)
		}
	}
	rng := rand.New(rand.NewPCG(seed, bitflipStream))
	ts := slices.SortedFunc(slices.Values(byRole[ordered[rng.IntN(len(ordered))]]), func(a, b Target) int { return cmp.Compare(a.PA, b.PA) })
	t := ts[rng.IntN(len(ts))]
	return Flip{Target: t, Offset: rng.Uint64N(t.Live), Bit: uint(rng.IntN(8))}, nil
}

// bitflipStream is the PCG's second seed word, fixed ("khoflip").
const bitflipStream = 0x6b686f666c6970

// FlipBit flips one bit of the region and describes it; the byte must lie
// in the region.
func FlipBit(r *physmem.Region, f Flip) (string, error) {
	if f.Bit > 7 {
		return "", fmt.Errorf("corrupt: bit %d of a byte", f.Bit)
	}
	e, err := flipEdit(r, f)
	if err != nil {
		return "", err
	}
	if err := commit(r, []edit{e}); err != nil {
		return "", err
	}
	return describe(Kind("bitflip"), []edit{e}), nil
}

func flipEdit(r *physmem.Region, f Flip) (edit, error) {
	old, err := r.Bytes(f.PA(), 1)
	if err != nil {
		return edit{}, fmt.Errorf("corrupt: flip %v: %w", f, err)
	}
	nu := old[0] ^ 1<<f.Bit
	return edit{
		pa: f.PA(), old: []byte{old[0]}, new: []byte{nu},
		what: fmt.Sprintf("%s %#x byte %#x bit %d", f.Target.Role, f.Target.PA, f.Offset, f.Bit),
		from: fmt.Sprintf("%#02x", old[0]), to: fmt.Sprintf("%#02x", nu),
	}, nil
}

// planSeededFlip is the edit of "bitflip:SEED".
func planSeededFlip(im image, seed uint64) ([]edit, error) {
	ts, err := Targets(im.r, im.rootPA)
	if err != nil {
		return nil, err
	}
	f, err := PickFlip(ts, seed)
	if err != nil {
		return nil, err
	}
	e, err := flipEdit(im.r, f)
	if err != nil {
		return nil, err
	}
	return []edit{e}, nil
}

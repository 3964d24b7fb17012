package corrupt

import (
	"errors"
	"math/bits"
	"slices"
	"strings"
	"testing"

	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// TestBitflipSeeds: every seeded flip of a 7.2 image changes exactly one
// bit, inside the live bytes of one of the structures the next kernel
// reads, the same bit for the same seed; over many seeds every role is
// hit; and kho-sim's next boot reads each damaged image without
// panicking.
func TestBitflipSeeds(t *testing.T) {
	h := newHandoverABI(t, "default", kernel.V72)
	targets, err := Targets(region(t, h.mem), h.next.RootPA)
	if err != nil {
		t.Fatal(err)
	}
	hit := map[Role]int{}
	for seed := range uint64(120) {
		k := Bitflip(seed)
		if got, err := ParseKind(string(k)); err != nil || got != k {
			t.Fatalf("ParseKind(%q) = %q, %v", k, got, err)
		}
		mem := h.clone()
		what, err := Apply(region(t, mem), h.next.RootPA, k)
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		again := h.clone()
		if w2, _ := Apply(region(t, again), h.next.RootPA, k); w2 != what || string(again) != string(mem) {
			t.Fatalf("%s is not deterministic: %q then %q", k, what, w2)
		}
		var changed []int
		flipped := 0
		for i := range mem {
			if d := mem[i] ^ h.mem[i]; d != 0 {
				changed = append(changed, i)
				flipped += bits.OnesCount8(d)
			}
		}
		if len(changed) != 1 || flipped != 1 {
			t.Fatalf("%s changed bytes %v (%d bits), want one bit: %s", k, changed, flipped, what)
		}
		pa := testBase + uint64(changed[0])
		in := slices.IndexFunc(targets, func(tg Target) bool { return pa >= tg.PA && pa < tg.PA+tg.Live })
		if in < 0 {
			t.Fatalf("%s flipped %#x, outside every target's live bytes: %s", k, pa, what)
		}
		role := targets[in].Role
		if !strings.Contains(what, string(role)) {
			t.Errorf("%s: %q does not name the role %s", k, what, role)
		}
		hit[role]++
		if _, _, err := h.nextBoot(t, mem); err != nil {
			t.Fatalf("%s (%s): %v", k, what, err)
		}
	}
	for _, role := range Roles() {
		if hit[role] == 0 {
			t.Errorf("no seed hit a %s: %v", role, hit)
		}
	}
}

// TestPickFlipOrder: the draw depends on the seed and the targets, not on
// the order they are listed in.
func TestPickFlipOrder(t *testing.T) {
	ts := []Target{{RoleRadix, 0x5000, 100}, {RoleRoot, 0x1000, 300}, {RoleFLB, 0x3000, 80}, {RoleRadix, 0x6000, 4096}}
	rev := slices.Clone(ts)
	slices.Reverse(rev)
	for seed := range uint64(50) {
		a, err1 := PickFlip(ts, seed)
		b, err2 := PickFlip(rev, seed)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if a.Target.Role != b.Target.Role || a.Offset != b.Offset || a.Bit != b.Bit || a.Offset >= a.Target.Live {
			t.Fatalf("seed %d: %v and %v", seed, a, b)
		}
	}
	if _, err := PickFlip([]Target{{RoleRoot, 0x1000, 0}}, 1); !errors.Is(err, ErrNotApplicable) {
		t.Errorf("no live bytes: %v, want ErrNotApplicable", err)
	}
}

// TestBitflipRefuses: a 7.0 image is no 7.2 handover, a malformed seed is
// no kind, a bit beyond a byte and a byte outside the region are errors.
func TestBitflipRefuses(t *testing.T) {
	h := newHandover(t, "default")
	mem := h.clone()
	if _, err := Apply(region(t, mem), h.next.RootPA, Bitflip(3)); !errors.Is(err, ErrNotApplicable) || string(mem) != string(h.mem) {
		t.Errorf("7.0 image: %v, want ErrNotApplicable and nothing changed", err)
	}
	for _, bad := range []string{"bitflip:", "bitflip:x", "bitflip:-1"} {
		if _, err := ParseKind(bad); !errors.Is(err, ErrUnknownKind) {
			t.Errorf("ParseKind(%q): %v, want ErrUnknownKind", bad, err)
		}
	}
	r := region(t, mem)
	if _, err := FlipBit(r, Flip{Target: Target{RoleRoot, testBase, 8}, Bit: 8}); err == nil {
		t.Error("bit 8 of a byte: no error")
	}
	if _, err := FlipBit(r, Flip{Target: Target{RoleRoot, testBase + regionSize, 8}}); err == nil {
		t.Error("a byte outside the region: no error")
	}
	if string(mem) != string(h.mem) {
		t.Error("a refused flip changed the image")
	}
}

// FuzzBitflip: on any bytes where a 7.2 handover was, a seeded flip
// either refuses or changes exactly one bit of the region, never panics.
func FuzzBitflip(f *testing.F) {
	h := newHandoverABI(f, "default", kernel.V72)
	off := h.next.RootPA - testBase
	f.Add(h.mem[off:off+physmem.PageSize], uint64(1))
	f.Add(h.mem[off:off+physmem.PageSize], uint64(36))
	f.Fuzz(func(t *testing.T, root []byte, seed uint64) {
		mem := h.clone()
		copy(mem[off:], root[:min(len(root), physmem.PageSize)])
		before := string(mem)
		if _, err := Apply(region(t, mem), h.next.RootPA, Bitflip(seed)); err != nil {
			if string(mem) != before {
				t.Fatalf("a refused flip changed the image: %v", err)
			}
			return
		}
		flipped := 0
		for i := range mem {
			flipped += bits.OnesCount8(mem[i] ^ before[i])
		}
		if flipped != 1 {
			t.Fatalf("seed %d flipped %d bits", seed, flipped)
		}
	})
}

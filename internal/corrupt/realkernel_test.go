package corrupt

import (
	"encoding/binary"
	"slices"
	"strings"
	"testing"

	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// TestPredictionsFoundOnTheRealKernel: single bit flips of a 7.2 image
// whose outcome e2e/realkernel.TestCorruptionMatrix observed on the real
// 7.2 kernel, and the words kho-sim's next boot must predict for each.
func TestPredictionsFoundOnTheRealKernel(t *testing.T) {
	h := newHandoverABI(t, "default", kernel.V72)
	targets, err := Targets(region(t, h.mem), h.next.RootPA)
	if err != nil {
		t.Fatal(err)
	}
	find := func(role Role) Target {
		i := slices.IndexFunc(targets, func(tg Target) bool { return tg.Role == role })
		if i < 0 {
			t.Fatalf("no %s in the image", role)
		}
		return targets[i]
	}
	root := find(RoleRoot)
	rootFDT := h.mem[root.PA-testBase:]
	offStrings := uint64(binary.BigEndian.Uint32(rootFDT[12:]))
	// The radix root (gen72 lists it first) and its first entry, a table
	// pointer.
	treePA := find(RoleRadix).PA
	tree := h.mem[treePA-testBase:][:physmem.PageSize]
	first := uint64(slices.IndexFunc(tree, func(b byte) bool { return b != 0 })) &^ 7
	// accepted: the next boot may find fault, but in no words of a
	// kernel that refuses the handover, loses LUO or dies.
	const accepted = ""
	refusals := []string{"disables KHO revival", "panics", "no LUO state", "before its console"}
	for _, tt := range []struct {
		name string
		flip Flip
		want string
	}{
		// kho_populate: fdt_check_header refuses a bad magic.
		{"root FDT magic", Flip{Target: root, Offset: 3, Bit: 0}, "the kernel disables KHO revival"},
		// The strings block's first name, preserved-memory-map: the
		// header is sound, but kho_get_mem_map_phys's lookup fails.
		{"root FDT strings block", Flip{Target: root, Offset: offStrings, Bit: 7}, "the kernel disables KHO revival: failed to get preserved memory map"},
		// The seeded flips of the root FDT TestCorruptionMatrix booted
		// (bitflip:N at the same offsets of the same default-scenario
		// root), with what the 7.2 kernel did: libfdt's lookups decide.
		{"bitflip:5 (boots without it)", Flip{Target: root, Offset: 0x5e, Bit: 2}, "the kernel disables KHO revival"},
		{"bitflip:6 (no LUO state)", Flip{Target: root, Offset: 0x9e, Bit: 7}, "no LUO state"},
		{"bitflip:33 (no LUO state)", Flip{Target: root, Offset: 0x7a, Bit: 5}, "no LUO state"},
		{"bitflip:12 (panics)", Flip{Target: root, Offset: 0x14c, Bit: 7}, "luo_early_startup fails"},
		{"bitflip:24 (panics)", Flip{Target: root, Offset: 0x142, Bit: 3}, "luo_early_startup fails"},
		{"bitflip:9 (accepts)", Flip{Target: root, Offset: 0xd2, Bit: 4}, accepted},
		{"bitflip:18 (accepts)", Flip{Target: root, Offset: 0xb9, Bit: 1}, accepted},
		{"bitflip:22 (accepts)", Flip{Target: root, Offset: 0xe9, Bit: 6}, accepted},
		{"bitflip:32 (accepts)", Flip{Target: root, Offset: 0x7e, Bit: 1}, accepted},
		// sessions_pa's top byte: luo_session_setup_incoming reads it at boot.
		{"sessions_pa beyond RAM", Flip{Target: find(RoleLUO), Offset: 0x17, Bit: 0}, "luo_session_setup_incoming"},
		// flbs_pa's top byte: the test FLBs' retrieve reads it at boot.
		{"flbs_pa beyond RAM", Flip{Target: find(RoleLUO), Offset: 0x1f, Bit: 0}, "at the first FLB retrieve"},
		// A radix table pointer 2 KiB off its page.
		{"radix pointer unaligned", Flip{Target: Target{RoleRadix, treePA, physmem.PageSize}, Offset: first + 1, Bit: 3}, kho.RadixPointerAction},
		// A radix table pointer 16 MiB up, past the region into RAM: the
		// kernel reads what lies there (bitflip:27 found zeros and took the
		// handover, bitflip:19 found the interrupt vectors and reset).
		{"radix pointer into RAM outside the region", Flip{Target: Target{RoleRadix, treePA, physmem.PageSize}, Offset: first + 3, Bit: 0}, kho.RadixOutsideAction},
		// 8 GiB up: beyond RAM (bitflip:3 reset before the console).
		{"radix pointer beyond RAM", Flip{Target: Target{RoleRadix, treePA, physmem.PageSize}, Offset: first + 4, Bit: 1}, "beyond the next kernel's RAM (" + kho.RadixPointerAction},
		// flbs_pa 2 MiB up onto a page of the region the handover does not
		// preserve (bitflip:49): taken in two runs, a panic in one.
		{"flbs_pa onto an unpreserved page", Flip{Target: find(RoleLUO), Offset: 0x1a, Bit: 5}, "the handover does not hold"},
		// sessions_pa 32 MiB up, past the region into RAM.
		{"sessions_pa into RAM outside the region", Flip{Target: find(RoleLUO), Offset: 0x13, Bit: 1}, "the handover does not hold"},
	} {
		mem := h.clone()
		if _, err := FlipBit(region(t, mem), tt.flip); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		_, ktap, err := h.nextBoot(t, mem)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if tt.want == accepted {
			for _, r := range refusals {
				if strings.Contains(ktap, r) {
					t.Errorf("%s (%v): the next boot says %q; the 7.2 kernel took the handover:\n%s", tt.name, tt.flip, r, ktap)
				}
			}
			continue
		}
		if !strings.Contains(ktap, tt.want) {
			t.Errorf("%s (%v): the next boot does not say %q:\n%s", tt.name, tt.flip, tt.want, ktap)
		}
	}
}

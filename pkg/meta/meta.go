// Package meta is kho-sim's own KHO child, "kho-sim": what one boot tells
// the next about itself and about what it handed over (scenario, boot
// numbers, KTAP totals, each FLB's and file's payload), so that the next
// boot, inspect and corrupt can check the kernel's structures against it.
// It is an FDT (compatible "kho-sim-v1") in every generation.
package meta

import (
	"fmt"

	"github.com/kho-sim/kho-sim/pkg/fdt"
)

// Name is kho-sim's own KHO child. Everything kho-sim needs to check the
// next boot independently of the kernel's structures lives here, never in
// a kernel structure.
const (
	Name       = "kho-sim"
	Compatible = "kho-sim-v1"
)

// Meta is what one boot tells the next about itself.
type Meta struct {
	Scenario string
	Boot     int // 1-based number of the boot that wrote this
	Boots    int // boots planned for the run
	// LUONumber is the liveupdate-number kho-sim expects in this boot's
	// LUO FDT: one more than the previous boot's, 1 after a cold boot.
	LUONumber uint64
	Fix       bool
	// Totals of the top-level results so far, so the last boot can print
	// the run's totals.
	Passed, Failed, Skipped int
	TSCHz, TSCReboot        uint64
	FLBs                    []FLB
	Files                   []File
}

// FLB is an FLB the boot handed over, as kho-sim expects to find it.
type FLB struct {
	Name  string
	Data  uint64
	Count uint64
	Size  uint64
	Seed  uint64
	CRC   uint32
	// Handle: Data is an opaque handle the FLB chose (the liveupdate test
	// module's TEST_FLB_MAGIC_BASE + i), not the address of a payload.
	Handle bool
}

// File is a preserved file, as kho-sim expects to find it.
type File struct {
	Session string
	Token   uint64
	Handler string
	Data    uint64
	Size    uint64
	Seed    uint64
	CRC     uint32
	// Memfd: Data is memfd-v2 state (a struct memfd_luo_ser), Size the
	// file's size and CRC its content's memfd.Checksum, not a payload.
	Memfd bool
}

// metaCapacity bounds the blob: a fixed part plus a generous size per entry.
func (m *Meta) capacity() int {
	return 1024 + 256*(len(m.FLBs)+len(m.Files)) + len(m.Scenario)
}

// Encode writes the metadata FDT.
func (m *Meta) Encode() ([]byte, error) {
	b := fdt.NewBuilder(m.capacity())
	_ = b.BeginNode("")
	_ = b.PropertyString("compatible", Compatible)
	_ = b.PropertyString("scenario", m.Scenario)
	_ = b.PropertyU64("boot", uint64(m.Boot))
	_ = b.PropertyU64("boots", uint64(m.Boots))
	_ = b.PropertyU64("liveupdate-number", m.LUONumber)
	_ = b.PropertyU32("fix", boolU32(m.Fix))
	_ = b.PropertyU64("passed", uint64(m.Passed))
	_ = b.PropertyU64("failed", uint64(m.Failed))
	_ = b.PropertyU64("skipped", uint64(m.Skipped))
	_ = b.PropertyU64("tsc-hz", m.TSCHz)
	_ = b.PropertyU64("tsc-reboot", m.TSCReboot)
	children(b, "flbs", "flb", m.FLBs, func(f FLB) {
		_ = b.PropertyString("name", f.Name)
		_ = b.PropertyU64("data", f.Data)
		_ = b.PropertyU64("count", f.Count)
		_ = b.PropertyU64("size", f.Size)
		_ = b.PropertyU64("seed", f.Seed)
		_ = b.PropertyU32("crc", f.CRC)
		if f.Handle {
			_ = b.PropertyU32("handle", 1)
		}
	})
	children(b, "files", "file", m.Files, func(f File) {
		_ = b.PropertyString("session", f.Session)
		_ = b.PropertyU64("token", f.Token)
		_ = b.PropertyString("handler", f.Handler)
		_ = b.PropertyU64("data", f.Data)
		_ = b.PropertyU64("size", f.Size)
		_ = b.PropertyU64("seed", f.Seed)
		_ = b.PropertyU32("crc", f.CRC)
		if f.Memfd {
			_ = b.PropertyU32("memfd", 1)
		}
	})
	_ = b.EndNode()
	return b.Finish()
}

// children writes node name with one child "kind@i" per item, whose
// properties write adds. The builder's errors are sticky: Finish reports them.
func children[T any](b *fdt.Builder, name, kind string, items []T, write func(T)) {
	_ = b.BeginNode(name)
	for i, it := range items {
		_ = b.BeginNode(fmt.Sprintf("%s@%d", kind, i))
		write(it)
		_ = b.EndNode()
	}
	_ = b.EndNode()
}

// Decode reads the metadata FDT, checking every property's presence
// and size.
func Decode(t *fdt.Tree) (*Meta, error) {
	r := t.Root
	if !r.IsCompatible(Compatible) {
		return nil, fmt.Errorf("kho-sim metadata is not %q", Compatible)
	}
	d := decoder{}
	m := &Meta{
		Scenario:  d.str(r, "scenario"),
		Boot:      int(d.u64(r, "boot")),
		Boots:     int(d.u64(r, "boots")),
		LUONumber: d.u64(r, "liveupdate-number"),
		Fix:       d.u32(r, "fix") != 0,
		Passed:    int(d.u64(r, "passed")),
		Failed:    int(d.u64(r, "failed")),
		Skipped:   int(d.u64(r, "skipped")),
		TSCHz:     d.u64(r, "tsc-hz"),
		TSCReboot: d.u64(r, "tsc-reboot"),
	}
	for _, n := range d.node(r, "flbs").children() {
		m.FLBs = append(m.FLBs, FLB{
			Name: d.str(n, "name"), Data: d.u64(n, "data"), Count: d.u64(n, "count"),
			Size: d.u64(n, "size"), Seed: d.u64(n, "seed"), CRC: d.u32(n, "crc"),
			Handle: d.flag(n, "handle"),
		})
	}
	for _, n := range d.node(r, "files").children() {
		m.Files = append(m.Files, File{
			Session: d.str(n, "session"), Token: d.u64(n, "token"), Handler: d.str(n, "handler"),
			Data: d.u64(n, "data"), Size: d.u64(n, "size"), Seed: d.u64(n, "seed"), CRC: d.u32(n, "crc"),
			Memfd: d.flag(n, "memfd"),
		})
	}
	if d.err != nil {
		return nil, fmt.Errorf("kho-sim metadata: %w", d.err)
	}
	if m.Boot < 1 || m.Boots < m.Boot || m.Boots > MaxBoots {
		return nil, fmt.Errorf("kho-sim metadata: boot %d of %d is impossible", m.Boot, m.Boots)
	}
	return m, nil
}

// MaxBoots bounds the run length a handover may claim.
const MaxBoots = 10000

// decoder keeps the first error so the decoding above stays linear.
type decoder struct{ err error }

type nodeList []*fdt.Node

func (l nodeList) children() []*fdt.Node { return l }

func (d *decoder) node(n *fdt.Node, name string) nodeList {
	c := n.Child(name)
	if c == nil {
		d.fail(fmt.Errorf("missing node %q", name))
		return nil
	}
	return c.Children
}

func (d *decoder) u64(n *fdt.Node, name string) uint64 {
	v, err := n.U64(name)
	d.fail(err)
	return v
}

func (d *decoder) u32(n *fdt.Node, name string) uint32 {
	b, ok := n.Prop(name)
	if !ok || len(b) != 4 {
		d.fail(fmt.Errorf("%s/%s: want 4 bytes, got %d", n.Name, name, len(b)))
		return 0
	}
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

// flag reads an optional u32 property written only when set.
func (d *decoder) flag(n *fdt.Node, name string) bool {
	if _, ok := n.Prop(name); !ok {
		return false
	}
	return d.u32(n, name) != 0
}

func (d *decoder) str(n *fdt.Node, name string) string {
	s, err := n.String(name)
	d.fail(err)
	return s
}

func (d *decoder) fail(err error) {
	if d.err == nil && err != nil {
		d.err = err
	}
}

func boolU32(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

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

// props is the one list of a node's properties, in the order they are
// written: Encode visits them with a writer, Decode with a reader.
type props interface {
	str(name string, v *string)
	u64(name string, v *uint64)
	u32(name string, v *uint32)
	int(name string, v *int)   // a u64
	bool(name string, v *bool) // a u32, 0 or 1
	// flag is an optional u32 1, present only when set, so handovers
	// written before it existed still decode.
	flag(name string, v *bool)
}

func (m *Meta) props(p props) {
	p.str("scenario", &m.Scenario)
	p.int("boot", &m.Boot)
	p.int("boots", &m.Boots)
	p.u64("liveupdate-number", &m.LUONumber)
	p.bool("fix", &m.Fix)
	p.int("passed", &m.Passed)
	p.int("failed", &m.Failed)
	p.int("skipped", &m.Skipped)
	p.u64("tsc-hz", &m.TSCHz)
	p.u64("tsc-reboot", &m.TSCReboot)
}

func (f *FLB) props(p props) {
	p.str("name", &f.Name)
	p.u64("data", &f.Data)
	p.u64("count", &f.Count)
	p.u64("size", &f.Size)
	p.u64("seed", &f.Seed)
	p.u32("crc", &f.CRC)
	p.flag("handle", &f.Handle)
}

func (f *File) props(p props) {
	p.str("session", &f.Session)
	p.u64("token", &f.Token)
	p.str("handler", &f.Handler)
	p.u64("data", &f.Data)
	p.u64("size", &f.Size)
	p.u64("seed", &f.Seed)
	p.u32("crc", &f.CRC)
	p.flag("memfd", &f.Memfd)
}

// Encode writes the metadata FDT.
func (m *Meta) Encode() ([]byte, error) {
	b := fdt.NewBuilder(m.capacity())
	w := writer{b}
	_ = b.BeginNode("")
	_ = b.PropertyString("compatible", Compatible)
	m.props(w)
	children(b, "flbs", "flb", m.FLBs, func(f FLB) { f.props(w) })
	children(b, "files", "file", m.Files, func(f File) { f.props(w) })
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

// writer adds the properties to the node being built; the builder's errors
// are sticky.
type writer struct{ b *fdt.Builder }

func (w writer) str(name string, v *string) { _ = w.b.PropertyString(name, *v) }
func (w writer) u64(name string, v *uint64) { _ = w.b.PropertyU64(name, *v) }
func (w writer) u32(name string, v *uint32) { _ = w.b.PropertyU32(name, *v) }
func (w writer) int(name string, v *int)    { _ = w.b.PropertyU64(name, uint64(*v)) }
func (w writer) bool(name string, v *bool)  { _ = w.b.PropertyU32(name, boolU32(*v)) }
func (w writer) flag(name string, v *bool) {
	if *v {
		_ = w.b.PropertyU32(name, 1)
	}
}

// Decode reads the metadata FDT, checking every property's presence
// and size.
func Decode(t *fdt.Tree) (*Meta, error) {
	r := t.Root
	if !r.IsCompatible(Compatible) {
		return nil, fmt.Errorf("kho-sim metadata is not %q", Compatible)
	}
	d := &decoder{}
	m := &Meta{}
	m.props(reader{d, r})
	for _, n := range d.node(r, "flbs") {
		var f FLB
		f.props(reader{d, n})
		m.FLBs = append(m.FLBs, f)
	}
	for _, n := range d.node(r, "files") {
		var f File
		f.props(reader{d, n})
		m.Files = append(m.Files, f)
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

// reader reads the properties of node n into a Meta, FLB or File.
type reader struct {
	d *decoder
	n *fdt.Node
}

func (r reader) str(name string, v *string) { *v = r.d.str(r.n, name) }
func (r reader) u64(name string, v *uint64) { *v = r.d.u64(r.n, name) }
func (r reader) u32(name string, v *uint32) { *v = r.d.u32(r.n, name) }
func (r reader) int(name string, v *int)    { *v = int(r.d.u64(r.n, name)) }
func (r reader) bool(name string, v *bool)  { *v = r.d.u32(r.n, name) != 0 }
func (r reader) flag(name string, v *bool)  { *v = r.d.flag(r.n, name) }

func (d *decoder) node(n *fdt.Node, name string) []*fdt.Node {
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

package luo

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/kho-sim/kho-sim/pkg/fdt"
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"golang.org/x/sys/unix"
)

// luoSpec describes a LUO FDT to build; zero fields take the valid value.
type luoSpec struct {
	rootCompat  string
	number      []byte
	sessionNode string // "-" omits the node
	sessionComp string
	sessionHdr  []byte
	flbNode     string // "-" omits the node
	flbComp     string
	flbHdr      []byte
}

func u64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func orBytes(v, def []byte) []byte {
	if v == nil {
		return def
	}
	return v
}

// build returns the FDT, pointing at real preserved blocks from mem.
func (s luoSpec) build(t *testing.T, mem *testMem) []byte {
	t.Helper()
	sessPA, _, _ := mem.AllocPreserve(SessionBlockSize)
	flbPA, _, _ := mem.AllocPreserve(FLBPageSize)
	b := fdt.NewBuilder(FDTSize)
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(b.BeginNode(""))
	must(b.PropertyString("compatible", or(s.rootCompat, FDTCompatible)))
	must(b.Property(FDTLiveupdateNum, orBytes(s.number, u64(4))))
	if s.sessionNode != "-" {
		must(b.BeginNode(or(s.sessionNode, FDTSessionNode)))
		must(b.PropertyString("compatible", or(s.sessionComp, FDTSessionCompatible)))
		must(b.Property(FDTSessionHeader, orBytes(s.sessionHdr, u64(sessPA))))
		must(b.EndNode())
	}
	if s.flbNode != "-" {
		must(b.BeginNode(or(s.flbNode, FDTFLBNode)))
		must(b.PropertyString("compatible", or(s.flbComp, FDTFLBCompatible)))
		must(b.Property(FDTFLBHeader, orBytes(s.flbHdr, u64(flbPA))))
		must(b.EndNode())
	}
	must(b.EndNode())
	blob, err := b.Finish()
	must(err)
	return blob
}

func TestSetupIncoming_Valid(t *testing.T) {
	tests := []struct {
		name string
		spec luoSpec
	}{
		{"kernel layout", luoSpec{}},
		{"unit address matches node name", luoSpec{flbNode: FDTFLBNode + "@0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := newTestMem()
			c := New(mem, Options{})
			if err := c.SetupIncoming(tt.spec.build(t, mem)); err != nil {
				t.Fatal(err)
			}
			if in, out := c.LiveupdateNumber(); in != 4 || out != 5 {
				t.Fatalf("numbers %d/%d, want 4/5", in, out)
			}
			if err := c.Open(); err != nil {
				t.Fatalf("Open of an empty handover: %v", err)
			}
		})
	}
}

func TestSetupIncoming_Invalid_BootError(t *testing.T) {
	tests := []struct {
		name   string
		spec   luoSpec
		blob   []byte
		errno  unix.Errno
		action kernel.Action
	}{
		{"not an FDT", luoSpec{}, []byte("garbage"), unix.EINVAL, kernel.PanicsAtBoot},
		{"root compatible", luoSpec{rootCompat: "luo-v2"}, nil, unix.EINVAL, kernel.PanicsAtBoot},
		{"number of 4 bytes", luoSpec{number: []byte{1, 0, 0, 0}}, nil, unix.EINVAL, kernel.PanicsAtBoot},
		{"no session node", luoSpec{sessionNode: "-"}, nil, unix.EINVAL, kernel.PanicsAtBoot},
		{"session-v1", luoSpec{sessionComp: "luo-session-v1"}, nil, unix.EINVAL, kernel.PanicsAtBoot},
		{"session header of 4 bytes", luoSpec{sessionHdr: []byte{0, 0, 0, 0}}, nil, unix.EINVAL, kernel.PanicsAtBoot},
		{"missing luo-flb node", luoSpec{flbNode: "-"}, nil, unix.ENOENT, kernel.PanicsAtBoot},
		{"flb compatible", luoSpec{flbComp: "luo-flb-v2"}, nil, unix.EINVAL, kernel.PanicsAtBoot},
		{"flb header of 16 bytes", luoSpec{flbHdr: make([]byte, 16)}, nil, unix.EINVAL, kernel.PanicsAtBoot},
		{"session block not preserved", luoSpec{sessionHdr: u64(0x7000)}, nil, unix.EFAULT, kernel.ReadsUnpreserved},
		{"FLB page not preserved", luoSpec{flbHdr: u64(0x7000)}, nil, unix.EFAULT, kernel.ReadsUnpreserved},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := newTestMem()
			c := New(mem, Options{})
			blob := tt.blob
			if blob == nil {
				blob = tt.spec.build(t, mem)
			}
			err := c.SetupIncoming(blob)
			var be *BootError
			if !errors.As(err, &be) || be.KernelAction != tt.action || !errors.Is(err, tt.errno) {
				t.Fatalf("SetupIncoming = %v, want BootError %v / %q", err, tt.errno, tt.action)
			}
			if c.Enabled() {
				t.Fatal("LUO still enabled after a failed incoming setup")
			}
		})
	}
}

// FuzzIncoming feeds arbitrary LUO FDTs and session blocks: setup and
// deserialization must fail cleanly or restore sessions that can be finished.
func FuzzIncoming(f *testing.F) {
	f.Add([]byte{}, uint64(1), uint64(0), []byte("s\x00"))
	f.Add([]byte{}, uint64(SessionMax+1), uint64(FileMax+1), []byte("x"))
	f.Fuzz(func(t *testing.T, junk []byte, sessions, files uint64, name []byte) {
		mem := newTestMem()
		w := newWorld()
		blob := luoSpec{}.build(t, mem)
		if len(junk) > 0 {
			blob = junk
		}
		block, err := mem.Map(0x100000, SessionBlockSize)
		if err != nil {
			t.Fatal(err)
		}
		le.PutUint64(block, sessions)
		filesPA, fileBlock, _ := mem.AllocPreserve(FileBlockSize)
		for i := 0; i < 3 && SessionHeaderSize+(i+1)*SessionEntrySize <= len(block); i++ {
			e := sessionEntry(block, i)
			copy(e[:SessionNameLen], name)
			e[0] = byte('a' + i)
			le.PutUint64(e[64:], filesPA)
			le.PutUint64(e[72:], files)
		}
		copy(fileBlock, "memfd\x00")
		c := New(mem, Options{})
		if err := c.RegisterFileHandler(w.handler("memfd", false)); err != nil {
			t.Fatal(err)
		}
		if err := c.SetupIncoming(blob); err != nil {
			return
		}
		if err := c.Open(); err != nil {
			return
		}
		_, in := c.Sessions()
		for _, n := range in {
			s, err := c.RetrieveSession(n)
			if err != nil {
				t.Fatalf("RetrieveSession(%q): %v", n, err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		}
	})
}

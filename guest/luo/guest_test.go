package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"testing"

	"github.com/kho-sim/kho-sim/pkg/fdt"
	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/physmem"
	"github.com/u-root/u-root/pkg/cpio"
)

func TestMemfdContent(t *testing.T) {
	seen := map[string]bool{}
	for _, ps := range testPlan() {
		for _, pf := range ps.files {
			b := memfdContent(pf.token, pf.size)
			if len(b) != pf.size {
				t.Errorf("token %#x: %d bytes, want %d", pf.token, len(b), pf.size)
			}
			if !bytes.Equal(b, memfdContent(pf.token, pf.size)) {
				t.Errorf("token %#x: content not deterministic", pf.token)
			}
			if seen[string(b)] {
				t.Errorf("token %#x: same content as another memfd", pf.token)
			}
			seen[string(b)] = true
		}
	}
	if len(seen) != 4 {
		t.Errorf("%d memfds in the plan, want 4", len(seen))
	}
}

// TestInitramfsFiles checks the guest's own file list (pid1 tests the
// archive itself): init executable, the radix snapshot only when there is
// one.
func TestInitramfsFiles(t *testing.T) {
	initBin, kernel, radix := []byte("\x7fELF init"), []byte("MZ kernel"), []byte("KHODUMP 1000 0 -\n")
	for _, tt := range []struct {
		name  string
		radix []byte
		want  []string
	}{
		{"first boot", nil, []string{initPath, kernelPath}},
		{"with the radix snapshot", radix, []string{initPath, kernelPath, radixPath}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			files := initramfsFiles(initBin, kernel, tt.radix)
			var names []string
			for _, f := range files {
				names = append(names, f.Name)
			}
			if fmt.Sprint(names) != fmt.Sprint(tt.want) {
				t.Fatalf("files %v, want %v", names, tt.want)
			}
			if files[0].Mode&0o111 == 0 || !bytes.Equal(files[0].Data, initBin) || !bytes.Equal(files[1].Data, kernel) {
				t.Errorf("init %o %q, kernel %q", files[0].Mode, files[0].Data, files[1].Data)
			}
			var buf bytes.Buffer
			if err := writeInitramfs(&buf, initBin, kernel, tt.radix); err != nil {
				t.Fatal(err)
			}
			recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(buf.Bytes())))
			if err != nil {
				t.Fatal(err)
			}
			if has := slices.ContainsFunc(recs, func(r cpio.Record) bool { return r.Name == radixPath }); has != (tt.radix != nil) {
				t.Errorf("archive has %s: %v", radixPath, has)
			}
		})
	}
}

// TestMemoryMapFromFDTPrefix feeds the scanner root FDTs as the kernel
// lays them out, cut where debugfs cuts kho/out/fdt.
func TestMemoryMapFromFDTPrefix(t *testing.T) {
	b := fdt.NewBuilder(physmem.PageSize)
	b.BeginNode("")
	b.PropertyString("compatible", kho.CompatibleV4)
	b.PropertyU64(kho.PropMemoryMap, 0x163000)
	b.BeginNode("LUO")
	b.PropertyU64(kho.PropBlobSize, 32)
	b.PropertyU64(kho.PropBlobData, 0x39f000)
	b.EndNode()
	b.EndNode()
	blob, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	full, _ := fdt.TotalSize(blob)
	// The map's value ends after the root's begin tag and name (8 bytes),
	// compatible (12 + 8) and the map's own header and value (12 + 8).
	mapEnd := int(binary.BigEndian.Uint32(blob[8:])) + 48
	for _, cut := range []int{full, full - 20, mapEnd} { // whole, strings cut, just past the map
		pa, err := memoryMapFromFDTPrefix(blob[:cut])
		if err != nil || pa != 0x163000 {
			t.Errorf("prefix of %d bytes: %#x, %v; want 0x163000", cut, pa, err)
		}
	}
	for _, cut := range []int{0, 39, mapEnd - 1} {
		if _, err := memoryMapFromFDTPrefix(blob[:cut]); err == nil {
			t.Errorf("prefix of %d bytes: no error", cut)
		}
	}
}

func TestNextCmdline(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"console=ttyS0 kho=on liveupdate=on", "console=ttyS0 kho=on liveupdate=on luo_stage=2"},
		{"console=ttyS0 kho=on liveupdate=on luo_incoming=dump panic=-1", "console=ttyS0 kho=off liveupdate=off panic=-1 luo_stage=2"},
		{"luo_stage=2 kho=on", "luo_stage=2 kho=on"},
		{"", "luo_stage=2"},
		// A quoted value is one parameter, as the kernel reads it: the
		// luo_incoming=dump inside it asks for nothing.
		{`console=ttyS0 dyndbg="file luo.c +p luo_incoming=dump"`, `console=ttyS0 dyndbg="file luo.c +p luo_incoming=dump" luo_stage=2`},
		{"console=ttyS0 -- luo_incoming=dump", "console=ttyS0 luo_stage=2 -- luo_incoming=dump"},
	} {
		got, err := nextCmdline(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("nextCmdline(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

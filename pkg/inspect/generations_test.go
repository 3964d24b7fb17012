package inspect

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/kho-sim/kho-sim/pkg/fdt"
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/luo"
	"github.com/kho-sim/kho-sim/pkg/meta"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

func TestDecodeGenerationImages(t *testing.T) {
	tests := []struct {
		abi      kernel.Generation
		kho, luo string
		serSize  uint64 // 0: no luo_ser
		kinds    []string
	}{
		{kernel.V70, kho.Compatible, luo.FDTCompatible, 0, []string{KindFDT, KindFDT}},
		{kernel.LUOv2, kho.Compatible, luo.FDTCompatibleV2, luo.SerV2Size, []string{KindFDT, KindFDT}},
		{kernel.V72, kho.CompatibleV4, luo.SerCompatible, luo.SerSize, []string{KindFDT, KindBlob, KindBlob}},
	}
	for _, tt := range tests {
		t.Run(string(tt.abi), func(t *testing.T) {
			path, root := simImageABI(t, "default", 2, tt.abi)
			rep := Decode(openImage(t, path), root)
			if len(rep.Findings) != 0 {
				t.Fatalf("findings: %v", rep.Findings)
			}
			if *rep.Generation != (Generation{Name: string(tt.abi), KHO: tt.kho, LUO: tt.luo}) {
				t.Errorf("generation %+v", *rep.Generation)
			}
			var kinds []string
			for _, s := range rep.Subtrees {
				kinds = append(kinds, s.Kind)
				if (s.Kind == KindBlob) != (s.Hex != "") || (s.Kind == KindFDT) != (s.DTS != "") || (s.BlobSize != 0) != (tt.kho == kho.CompatibleV4) {
					t.Errorf("subtree %+v", s)
				}
			}
			if !slices.Equal(kinds, tt.kinds) {
				t.Errorf("subtree kinds %v, want %v", kinds, tt.kinds)
			}
			l := rep.LUO
			if l.Compatible != tt.luo || l.LiveupdateNumber != 1 || (l.Ser != nil) != (tt.serSize != 0) || (l.Ser != nil && l.Ser.Size != tt.serSize) {
				t.Errorf("LUO %+v ser %+v", l, l.Ser)
			}
			if l.Ser != nil && !preserved(rep.Memory, uint64(l.Ser.PA)) {
				t.Errorf("luo_ser %#x not preserved", uint64(l.Ser.PA))
			}
			if l.FLB == nil || l.FLB.PA != l.FLBsPA || l.Sessions == nil || l.Sessions.PA != l.SessionsPA || len(l.Sessions.Blocks) != 1 || l.Sessions.Count != 2 {
				t.Fatalf("FLB %+v sessions %+v", l.FLB, l.Sessions)
			}
			for _, s := range l.Sessions.Sessions {
				if len(s.FileBlocks) != 1 || s.FileBlocks[0].PA != s.FilesPA || s.FileBlocks[0].Count != s.Count || uint64(len(s.Files)) != s.Count {
					t.Errorf("session %+v", s)
				}
			}
			if (rep.KexecMetadata != nil) != (tt.abi == kernel.V72) || (tt.abi == kernel.V72 && rep.KexecMetadata.KexecCount != 1) {
				t.Errorf("kexec-metadata %+v", rep.KexecMetadata)
			}
			want := EncodingBitmaps
			if tt.abi == kernel.V72 {
				want = EncodingRadix
			}
			if rep.Memory.Encoding != want {
				t.Errorf("memory encoding %q, want %q", rep.Memory.Encoding, want)
			}
			var js bytes.Buffer
			if err := WriteJSON(&js, rep); err != nil {
				t.Fatal(err)
			}
			var doc map[string]any
			if err := json.Unmarshal(js.Bytes(), &doc); err != nil {
				t.Fatal(err)
			}
			if g := doc["generation"].(map[string]any); g["name"] != string(tt.abi) || doc["schema"] != float64(SchemaVersion) {
				t.Errorf("JSON generation %v schema %v", g, doc["schema"])
			}
		})
	}
}

// editRoot rewrites the root FDT in place through edit.
func editRoot(t *testing.T, r *physmem.Region, rep *Report, edit func(root *fdt.Node)) {
	t.Helper()
	pa := uint64(rep.KHO.PA)
	blob, err := r.Bytes(pa, uint64(rep.KHO.Size))
	if err != nil {
		t.Fatal(err)
	}
	tree, err := fdt.Parse(blob)
	if err != nil {
		t.Fatal(err)
	}
	edit(tree.Root)
	out, err := fdt.Encode(tree)
	if err != nil {
		t.Fatal(err)
	}
	page, err := r.Bytes(pa, physmem.PageSize-pa%physmem.PageSize)
	if err != nil || len(out) > len(page) {
		t.Fatalf("root of %d bytes in its page: %v", len(out), err)
	}
	clear(page)
	copy(page, out)
}

func setChildU64(t *testing.T, root *fdt.Node, child, name string, v uint64) {
	t.Helper()
	c := root.Child(child)
	if c == nil {
		t.Fatalf("no child %s", child)
	}
	for i := range c.Props {
		if c.Props[i].Name == name {
			c.Props[i].Value = le64(v)
			return
		}
	}
	t.Fatalf("child %s has no %s", child, name)
}

func put32(t *testing.T, r *physmem.Region, pa uint64, v uint32) {
	t.Helper()
	b, err := r.Bytes(pa, 4)
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint32(b, v)
}

// firstSlot returns the address of the first non-zero entry of a radix
// table page.
func firstSlot(t *testing.T, r *physmem.Region, table uint64) uint64 {
	t.Helper()
	b, err := r.Bytes(table, physmem.PageSize)
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(b); off += 8 {
		if binary.LittleEndian.Uint64(b[off:]) != 0 {
			return table + uint64(off)
		}
	}
	t.Fatal("empty radix table")
	return 0
}

func TestDecodeDamageGenerations(t *testing.T) {
	v2, v72 := kernel.LUOv2, kernel.V72
	tests := []struct {
		abi    kernel.Generation
		name   string
		apply  func(t *testing.T, r *physmem.Region, rep *Report)
		where  string
		what   string
		kernel string
	}{
		{v2, "luo_ser unpreserved", func(t *testing.T, r *physmem.Region, rep *Report) {
			setProp(t, r, rep, luo.FDTKHOEntryName, luo.FDTABIHeader, le64(r.End()-4096))
		}, whereSer, "page not in the preserved-memory map", v2.Does(kernel.UsesBadAddress)},
		{v2, "no luo-abi-header", func(t *testing.T, r *physmem.Region, rep *Report) {
			replaceInFDT(t, r, rep, luo.FDTKHOEntryName, []byte("luo-abi-header\x00"), []byte("luo-abi-headex\x00"))
		}, whereLUO, `"luo-abi-header"`, v2.Does(kernel.PanicsAtBoot)},
		{v2, "flbs_pa 0", func(t *testing.T, r *physmem.Region, rep *Report) {
			put64(t, r, uint64(rep.LUO.Ser.PA)+16, 0)
		}, whereFLB, "flbs_pa is 0, but 2 FLBs were handed over", v2.Does(kernel.LosesFLBState)},
		{v2, "liveupdate number", func(t *testing.T, r *physmem.Region, rep *Report) {
			put64(t, r, uint64(rep.LUO.Ser.PA), 5)
		}, whereSer, "liveupdate-number 5, want 1", ""},
		{v2, "session count", func(t *testing.T, r *physmem.Region, rep *Report) {
			put64(t, r, uint64(rep.LUO.SessionsPA), 1000)
		}, whereSessions, "session header count 1000 above LUO_SESSION_MAX 819", v2.Does(kernel.ReadsPastBlock)},
		{v2, "LUO compatible", func(t *testing.T, r *physmem.Region, rep *Report) {
			replaceInFDT(t, r, rep, luo.FDTKHOEntryName, []byte("luo-v2\x00"), []byte("luo-v7\x00"))
		}, whereLUO, `LUO FDT compatible "luo-v7", want "luo-v1" or "luo-v2"`, kernel.V70.Does(kernel.PanicsAtBoot)},

		{v72, "LUO blob compatible", func(t *testing.T, r *physmem.Region, rep *Report) {
			b, _ := r.Bytes(uint64(rep.LUO.Ser.PA), 8)
			copy(b, "luo-v9\x00")
		}, whereBlob, `LUO blob compatible "luo-v9", want "luo-v5"`, v72.Does(kernel.PanicsAtBoot)},
		{v72, "LUO blob-size", func(t *testing.T, r *physmem.Region, rep *Report) {
			editRoot(t, r, rep, func(root *fdt.Node) { setChildU64(t, root, luo.FDTKHOEntryName, kho.PropBlobSize, 16) })
		}, whereBlob, "LUO blob of 16 bytes, smaller than struct luo_ser (32)", v72.Does(kernel.PanicsAtBoot)},
		{v72, "LUO blob unpreserved", func(t *testing.T, r *physmem.Region, rep *Report) {
			editRoot(t, r, rep, func(root *fdt.Node) { setChildU64(t, root, luo.FDTKHOEntryName, kho.PropBlobData, r.End()-4096) })
		}, "subtree LUO", "page not in the preserved-memory map", v72.Does(kernel.PanicsAtBoot)},
		{v72, "kho-sim child a raw blob", func(t *testing.T, r *physmem.Region, rep *Report) {
			editRoot(t, r, rep, func(root *fdt.Node) {
				setChildU64(t, root, meta.Name, kho.PropBlobData, uint64(rep.LUO.Ser.PA))
				setChildU64(t, root, meta.Name, kho.PropBlobSize, luo.SerSize)
			})
		}, whereMeta, "raw blob, not the FDT", ""},
		{v72, "session chain loops", func(t *testing.T, r *physmem.Region, rep *Report) {
			put64(t, r, uint64(rep.LUO.SessionsPA), uint64(rep.LUO.SessionsPA))
		}, whereSessions, "session block chain loops back to", v72.Does(kernel.PanicsAtBoot)},
		{v72, "session block count 0", func(t *testing.T, r *physmem.Region, rep *Report) {
			put64(t, r, uint64(rep.LUO.SessionsPA)+8, 0)
		}, whereSessions, "count 0, want 1 to 51", v72.Does(kernel.PanicsAtBoot)},
		{v72, "file block count", func(t *testing.T, r *physmem.Region, rep *Report) {
			put64(t, r, uint64(rep.LUO.Sessions.Sessions[0].FilesPA)+8, 64)
		}, whereSessions, "count 64, want 1 to 63", v72.Does(kernel.FailsOpen)},
		{v72, "file count differs", func(t *testing.T, r *physmem.Region, rep *Report) {
			put64(t, r, uint64(rep.LUO.SessionsPA)+16+72, 5)
		}, whereSessions, "2 files in its blocks, 5 in its entry", v72.Does(kernel.FailsOpen)},
		{v72, "file block unpreserved", func(t *testing.T, r *physmem.Region, rep *Report) {
			put64(t, r, uint64(rep.LUO.SessionsPA)+16+64, r.End()-8192)
		}, whereSessions, "page not in the preserved-memory map", v72.Does(kernel.UsesBadAddress)},
		{v72, "file block unaligned", func(t *testing.T, r *physmem.Region, rep *Report) {
			put64(t, r, uint64(rep.LUO.SessionsPA)+16+64, uint64(rep.LUO.Sessions.Sessions[0].FilesPA)+8)
		}, whereSessions, "is not page aligned", v72.Does(kernel.UsesBadAddress)},
		{v72, "files without a block", func(t *testing.T, r *physmem.Region, rep *Report) {
			put64(t, r, uint64(rep.LUO.SessionsPA)+16+64, 0)
		}, whereSessions, "files but no file block", v72.Does(kernel.WarnsNoFiles)},
		{v72, "file compatible without NUL", func(t *testing.T, r *physmem.Region, rep *Report) {
			fill(t, r, uint64(rep.LUO.Sessions.Sessions[0].FilesPA)+16, 48, 'x')
		}, whereSessions, "has no NUL in its 48 bytes", v72.Does(kernel.FailsOpen)},
		{v72, "duplicate session", func(t *testing.T, r *physmem.Region, rep *Report) {
			b, _ := r.Bytes(uint64(rep.LUO.SessionsPA)+16+80, 64)
			copy(b, "vm-1\x00")
		}, whereSessions, "repeats the name of session 0 (EEXIST)", v72.Does(kernel.FailsOpen)},
		{v72, "sessions_pa 0", func(t *testing.T, r *physmem.Region, rep *Report) {
			put64(t, r, uint64(rep.LUO.Ser.PA)+16, 0)
		}, whereSessions, "file vm-1/1 missing from the session blocks", ""},
		{v72, "FLB count", func(t *testing.T, r *physmem.Region, rep *Report) {
			put64(t, r, uint64(rep.LUO.FLBsPA)+8, 64)
		}, whereFLB, "FLB header count 64 above LUO_FLB_MAX 63", v72.Does(kernel.ReadsPastPage)},
		{v72, "kexec-metadata version", func(t *testing.T, r *physmem.Region, rep *Report) {
			put32(t, r, uint64(rep.KexecMetadata.PA), 2)
		}, whereKexec, "version 2 not supported", kernel.V70.Does(kernel.IgnoresMetadata)},
		{v72, "kexec_count", func(t *testing.T, r *physmem.Region, rep *Report) {
			put32(t, r, uint64(rep.KexecMetadata.PA)+4+kho.ReleaseLen, 7)
		}, whereKexec, "kexec_count 7, want 1", ""},
		{v72, "radix tree not a tree", func(t *testing.T, r *physmem.Region, rep *Report) {
			put64(t, r, firstSlot(t, r, uint64(rep.KHO.MemoryMapPA)), uint64(rep.KHO.MemoryMapPA))
		}, whereMap, "reached twice", ""},
		{v72, "root compatible", func(t *testing.T, r *physmem.Region, rep *Report) {
			b, _ := r.Bytes(uint64(rep.RootPA), uint64(rep.KHO.Size))
			copy(b[bytes.Index(b, []byte("kho-v4")):], "kho-v5")
		}, whereRoot, `root FDT compatible "kho-v5", want "kho-v1" or "kho-v4"`, kernel.V70.Does(kernel.DisablesRevival)}, // no generation: 7.0's words
	}
	images := map[kernel.Generation][]byte{}
	roots := map[kernel.Generation]uint64{}
	for _, abi := range []kernel.Generation{v2, v72} {
		path, root := simImageABI(t, "default", 2, abi)
		images[abi], roots[abi] = readFile(t, path), root
	}
	for _, tt := range tests {
		t.Run(string(tt.abi)+"/"+tt.name, func(t *testing.T) {
			r, err := physmem.New(testBase, bytes.Clone(images[tt.abi]))
			if err != nil {
				t.Fatal(err)
			}
			root := roots[tt.abi]
			tt.apply(t, r, Decode(r, root))
			rep := Decode(r, root)
			if !hasFinding(rep, tt.where, tt.what, tt.kernel) {
				t.Fatalf("no %s finding %q (%q) among:\n%s", tt.where, tt.what, tt.kernel, findings(rep))
			}
			checkReport(t, rep)
		})
	}
}

// TestDecodeDamage72KeepsGoing damages two independent parts of a 7.2
// image: both are found, and the rest is still decoded.
func TestDecodeDamage72KeepsGoing(t *testing.T) {
	path, root := simImageABI(t, "default", 2, kernel.V72)
	r, err := physmem.New(testBase, readFile(t, path))
	if err != nil {
		t.Fatal(err)
	}
	good := Decode(r, root)
	put64(t, r, uint64(good.LUO.FLBsPA)+8, 64)
	put64(t, r, uint64(good.LUO.Sessions.Sessions[0].FilesPA)+8, 0)
	rep := Decode(r, root)
	if !hasFinding(rep, whereFLB, "count 64", kernel.V72.Does(kernel.ReadsPastPage)) || !hasFinding(rep, whereSessions, "count 0, want 1 to 63", kernel.V72.Does(kernel.FailsOpen)) {
		t.Fatalf("want both findings:\n%s", findings(rep))
	}
	if rep.KHOSim == nil || rep.KexecMetadata == nil || len(rep.LUO.Sessions.Sessions) != 2 || len(rep.LUO.Sessions.Sessions[1].Files) != 1 {
		t.Errorf("decoding stopped early: %+v", rep)
	}
}

// TestDecode72UnreadableMap breaks the radix tree: nothing past the root
// is read, but the children are still listed with their kho-v4 properties.
func TestDecode72UnreadableMap(t *testing.T) {
	path, root := simImageABI(t, "default", 2, kernel.V72)
	r, err := physmem.New(testBase, readFile(t, path))
	if err != nil {
		t.Fatal(err)
	}
	good := Decode(r, root)
	put64(t, r, firstSlot(t, r, uint64(good.KHO.MemoryMapPA)), r.End()) // a node outside the region
	rep := Decode(r, root)
	if !hasFinding(rep, whereMap, "outside the region", "") || rep.Memory != nil || rep.LUO != nil {
		t.Fatalf("findings:\n%s", findings(rep))
	}
	if *rep.Generation != (Generation{KHO: kho.CompatibleV4}) {
		t.Errorf("generation %+v", *rep.Generation)
	}
	if len(rep.Subtrees) != len(good.Subtrees) {
		t.Fatalf("subtrees %+v", rep.Subtrees)
	}
	for i, s := range rep.Subtrees {
		if g := good.Subtrees[i]; s.Name != g.Name || s.PA != g.PA || s.BlobSize != g.BlobSize || s.Kind != "" {
			t.Errorf("subtree %+v, was %+v", s, g)
		}
	}
	var text bytes.Buffer
	if err := WriteText(&text, rep); err != nil || !strings.Contains(text.String(), `== subtree "LUO": at `+good.Subtrees[1].PA.String()+", blob-size 32 not read ==") {
		t.Errorf("text (%v):\n%s", err, text.String())
	}
}

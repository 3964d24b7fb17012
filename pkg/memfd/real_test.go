package memfd

import (
	"bufio"
	"bytes"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/kho-sim/kho-sim/internal/realhandover"
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/luo"
)

// The capture in testdata/real-7.2: Debian's linux-source-7.2
// (7.2.13) built by scripts/luo-kernel/build.sh; guest/luo created four
// memfds with memfd_create(name, 0), wrote its content with pwrite and
// preserved them; handover.txt holds every page of the handover at the
// kexec, each memfd's folio array, chunks and folios included.

// guestPreserved matches guest/luo's stage 1 line for each memfd: its
// token, size and the IEEE CRC-32 of the content it wrote.
var guestPreserved = regexp.MustCompile(`LUO-GUEST stage=1: preserved memfd token=(0x[0-9a-f]+) size=([0-9]+) crc32=([0-9a-f]{8})`)

type guestFile struct {
	size  uint64
	crc32 uint32
}

// guestFiles reads what the guest said it preserved, by token.
func guestFiles(t *testing.T) map[uint64]guestFile {
	t.Helper()
	f, err := os.Open(filepath.Join(realhandover.Dir(), "console.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[uint64]guestFile{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := guestPreserved.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		tok, _ := strconv.ParseUint(m[1], 0, 64)
		size, _ := strconv.ParseUint(m[2], 10, 64)
		sum, _ := strconv.ParseUint(m[3], 16, 32)
		out[tok] = guestFile{size, uint32(sum)}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// realFiles decodes the captured handover and each of its memfd-v2 files,
// checking every block against the handover's radix tree.
func realFiles(t *testing.T) (*kho.Dump, map[uint64]*File) {
	t.Helper()
	d := realhandover.Load(t, realhandover.Handover)
	h, err := luo.Read(d.Pages, d.Setup.FDTAddr)
	if err != nil {
		t.Fatal(err)
	}
	preserved := h.In.BlockAt
	files := map[uint64]*File{}
	for _, s := range h.Sessions.Sessions {
		for _, lf := range s.Files {
			if lf.Compatible != Compatible {
				t.Errorf("token %#x: compatible %q, want %q", lf.Token, lf.Compatible, Compatible)
				continue
			}
			file, err := Read(d.Pages, lf.Data, Options{Preserved: preserved})
			if err != nil {
				t.Fatalf("token %#x: %v", lf.Token, err)
			}
			files[lf.Token] = file
		}
	}
	return d, files
}

// TestRealKernel72 reads the four memfds the real 7.2 kernel preserved and
// checks them against what the guest wrote: the size, the content (the
// IEEE CRC-32 the guest logged, and its header line), and what
// memfd_luo_preserve leaves for a memfd created without flags and
// written with pwrite: position 0, seals F_SEAL_SEAL only, one order-0
// folio per page and no holes (memfd_pin_folios fills every index),
// every folio dirty and up to date, the array one vcalloc'd page with one
// chunk, and zeros after the end of the file in its last folio.
func TestRealKernel72(t *testing.T) {
	guest := guestFiles(t)
	if len(guest) != 4 {
		t.Fatalf("the guest logged %d preserved memfds, want 4", len(guest))
	}
	d, files := realFiles(t)
	if len(files) != len(guest) {
		t.Fatalf("%d memfd-v2 files in the handover, the guest preserved %d", len(files), len(guest))
	}
	for tok, g := range guest {
		t.Run(fmt.Sprintf("%#x", tok), func(t *testing.T) {
			f := files[tok]
			if f == nil {
				t.Fatal("not in the handover")
			}
			t.Logf("token %#x: %s", tok, f)
			content, err := f.Content(d.Pages)
			if err != nil {
				t.Fatal(err)
			}
			if f.Size() != g.size || crc32.ChecksumIEEE(content) != g.crc32 {
				t.Errorf("size %d crc32 %08x, the guest wrote %d bytes with crc32 %08x", f.Size(), crc32.ChecksumIEEE(content), g.size, g.crc32)
			}
			if head := fmt.Sprintf("kho-sim memfd token %#x size %d\n", tok, g.size); !bytes.HasPrefix(content, []byte(head)[:min(len(head), len(content))]) {
				t.Errorf("content starts %q, want %q", content[:min(len(content), len(head))], head)
			}
			if f.Checksum != Checksum(content) {
				t.Errorf("checksum %#x, CRC-32 of the content %#x", f.Checksum, Checksum(content))
			}
			if f.Ser.Pos != 0 || f.Seals() != SealSeal || f.Ser.Flags != 0 {
				t.Errorf("pos %d seals %#x flags %#x, want 0, F_SEAL_SEAL, 0", f.Ser.Pos, f.Seals(), f.Ser.Flags)
			}
			n := pages(g.size)
			if f.Ser.NrFolios != n || uint64(len(f.Folios)) != n || f.Holes != 0 || f.Skipped != 0 {
				t.Errorf("nr_folios %d, %d folios, %d holes, %d skipped; want %d folios, no holes", f.Ser.NrFolios, len(f.Folios), f.Holes, f.Skipped, n)
			}
			for i, fo := range f.Folios {
				if fo.Index != uint64(i) || fo.Order != 0 || fo.Flags != FolioDirty|FolioUptodate {
					t.Errorf("folio %d: %+v, want index %d, order 0, dirty and up to date", i, fo, i)
				}
			}
			v := f.Ser.Folios
			if v.Flags != kho.VmallocFlagAlloc || v.Order != 0 || v.TotalPages != 1 || len(f.Area.Chunks) != 1 || v.First != f.Area.Chunks[0] {
				t.Errorf("folio array %+v, chunks %#x; want one page, one chunk, KHO_VMALLOC_ALLOC, order 0", v, f.Area.Chunks)
			}
			last := f.Folios[len(f.Folios)-1]
			tail, err := d.Pages.Bytes(last.PA(), kernel.PageSize)
			if err != nil {
				t.Fatal(err)
			}
			if end := g.size - last.Index*kernel.PageSize; !bytes.Equal(tail[end:], make([]byte, kernel.PageSize-end)) {
				t.Errorf("bytes after the end of the file in its last folio are not zero")
			}
		})
	}
}

// TestRealKernel72ThroughWriter lays the guest's four files out again
// with Write and reads both back: the same sizes, folio counts, seals and
// checksums as the real kernel's, only the addresses differ.
func TestRealKernel72ThroughWriter(t *testing.T) {
	d, files := realFiles(t)
	for tok, real := range files {
		content, err := real.Content(d.Pages)
		if err != nil {
			t.Fatal(err)
		}
		w := newWorld(t)
		spec := Spec{Size: real.Size(), Seals: real.Seals(), Seed: 1}
		wr, err := Write(w.out, spec)
		if err != nil {
			t.Fatal(err)
		}
		// Put the guest's bytes into the folios the writer allocated.
		for _, b := range wr.Blocks {
			var idx uint64
			if _, err := fmt.Sscanf(b.What, "folio index %d", &idx); err != nil {
				continue
			}
			mem, _ := w.r.Bytes(b.PA, kernel.PageSize)
			clear(mem)
			copy(mem, content[idx*kernel.PageSize:min(uint64(len(content)), (idx+1)*kernel.PageSize)])
		}
		_, pf := w.handover()
		mine, err := Read(w.r, wr.PA, Options{Preserved: pf})
		if err != nil {
			t.Fatal(err)
		}
		// memfd_luo_ser equal but for the chunk's address; each folio
		// entry equal but for its frame.
		a, b := mine.Ser, real.Ser
		a.Folios.First, b.Folios.First = 0, 0
		if a != b || mine.String() != real.String() {
			t.Errorf("token %#x: kho-sim %s %+v, the kernel %s %+v", tok, mine, a, real, b)
		}
		for i := range min(len(mine.Folios), len(real.Folios)) {
			x, y := mine.Folios[i], real.Folios[i]
			if x.Index != y.Index || x.Flags != y.Flags || x.Order != y.Order {
				t.Errorf("token %#x folio %d: kho-sim %+v, the kernel %+v", tok, i, x, y)
			}
		}
	}
}

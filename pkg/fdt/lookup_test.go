package fdt

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// kexecRoot is a KHO root FDT as Linux 7.2 writes it (kho_out_fdt_setup,
// then kho_add_subtree for each child): the tree the lookup tests damage.
func kexecRoot(t testing.TB) []byte {
	t.Helper()
	b := NewBuilder(4096)
	u64 := func(v uint64) []byte {
		return []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24), byte(v >> 32), byte(v >> 40), byte(v >> 48), byte(v >> 56)}
	}
	steps := []func() error{
		func() error { return b.BeginNode("") },
		func() error { return b.PropertyString("compatible", "kho-v4") },
		func() error { return b.Property("preserved-memory-map", u64(0x10044000)) },
	}
	for i, name := range []string{"kexec-metadata", "LUO", "kho-sim"} {
		steps = append(steps,
			func() error { return b.BeginNode(name) },
			func() error { return b.Property("preserved-data", u64(0x10002000+uint64(i)<<12)) },
			func() error { return b.Property("blob-size", u64(32+uint64(i))) },
			b.EndNode)
	}
	steps = append(steps, b.EndNode)
	for _, s := range steps {
		if err := s(); err != nil {
			t.Fatal(err)
		}
	}
	blob, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return blob
}

// libfdtCode is the int libfdt returns for err: 0, or -FDT_ERR_*.
func libfdtCode(err error) int {
	var e Errno
	if errors.As(err, &e) {
		return -int(e)
	}
	if err != nil {
		panic(err)
	}
	return 0
}

// goLookups makes the 7.2 kernel's lookups of a KHO root with a Lookup
// and prints them as testdata/libfdt_lookup.py prints libfdt's.
func goLookups(blob []byte) string {
	l, err := NewLookup(blob)
	out := []string{fmt.Sprintf("hdr=%d", libfdtCode(err))}
	if err != nil {
		return out[0]
	}
	prop := func(node int, name string) string {
		v, err := l.Prop(node, name)
		if err != nil {
			return fmt.Sprintf("err%d", libfdtCode(err))
		}
		return hex.EncodeToString(v)
	}
	compat := 1
	if err := l.CheckCompatible(0, "kho-v4"); err == nil {
		compat = 0
	} else if !errors.Is(err, ErrNotCompatible) {
		compat = libfdtCode(err)
	}
	out = append(out, fmt.Sprintf("compat=%d", compat), "map="+prop(0, "preserved-memory-map"))
	for _, name := range []string{"LUO", "kexec-metadata", "kho-sim"} {
		off, err := l.Subnode(0, name)
		if err != nil {
			out = append(out, fmt.Sprintf("%s=err%d", name, libfdtCode(err)))
			continue
		}
		out = append(out, fmt.Sprintf("%s=%d", name, off))
		for _, p := range []string{"preserved-data", "blob-size"} {
			out = append(out, fmt.Sprintf("%s.%s=%s", name, p, prop(off, p)))
		}
	}
	return strings.Join(out, " ")
}

// TestLookupMatchesLibfdt flips every bit of a KHO root FDT, one at a
// time, and demands of each damaged tree what libfdt itself (Debian's
// python3-libfdt) answers to the lookups the 7.2 kernel makes at boot:
// fdt_check_header, the root's compatible, its preserved-memory-map, and
// each child with its preserved-data and blob-size.
func TestLookupMatchesLibfdt(t *testing.T) {
	requireLibfdt(t)
	// The root as it lies in its page: a totalsize flipped higher makes
	// libfdt read on into the page.
	base := make([]byte, 4096)
	copy(base, kexecRoot(t))
	blobs := [][]byte{base}
	for i := range len(kexecRoot(t)) {
		for bit := range 8 {
			b := bytes.Clone(base)
			b[i] ^= 1 << bit
			blobs = append(blobs, b)
		}
	}
	var in bytes.Buffer
	for _, b := range blobs {
		in.WriteString(hex.EncodeToString(b) + "\n")
	}
	cmd := exec.Command(python, "testdata/libfdt_lookup.py")
	cmd.Stdin = &in
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	got, err := cmd.Output()
	if err != nil {
		t.Fatalf("libfdt_lookup.py: %v: %s", err, stderr.Bytes())
	}
	want := strings.Split(strings.TrimSuffix(string(got), "\n"), "\n")
	if len(want) != len(blobs) {
		t.Fatalf("libfdt answered for %d blobs, want %d", len(want), len(blobs))
	}
	if !strings.Contains(want[0], "LUO.blob-size=2100000000000000") {
		t.Fatalf("the undamaged root: libfdt says %s", want[0])
	}
	differ, aligned := 0, 0
	outcomes := map[string]bool{}
	for i, b := range blobs {
		g := goLookups(b)
		outcomes[g] = true
		// The kernel's libfdt (scripts/dtc/libfdt, dtc 1.7) refuses a
		// misaligned off_mem_rsvmap or off_dt_struct in fdt_check_header;
		// Debian 12's libfdt 1.6.1 predates that check.
		if g == fmt.Sprintf("hdr=%d", -int(ErrnoAlignment)) && i > 0 && ((i-1)/8 == hOffStruct+3 || (i-1)/8 == hOffRsvmap+3) {
			aligned++
			continue
		}
		if g != want[i] {
			if differ++; differ <= 10 {
				what := "undamaged"
				if i > 0 {
					what = fmt.Sprintf("byte %#x bit %d", (i-1)/8, (i-1)%8)
				}
				t.Errorf("%s:\n  Lookup: %s\n  libfdt: %s", what, g, want[i])
			}
		}
	}
	if differ > 0 {
		t.Errorf("%d of %d trees answered differently", differ, len(blobs))
	}
	if aligned != 5 {
		t.Errorf("%d misaligned blocks, want 5 (bits 0-1 of off_dt_struct, 0-2 of off_mem_rsvmap)", aligned)
	}
	// The flips must reach every kind of answer, or the test proves little.
	if len(outcomes) < 20 {
		t.Errorf("only %d distinct answers over %d trees", len(outcomes), len(blobs))
	}
}

// FuzzLookup runs the kernel's lookups on any bytes: an answer or an
// Errno, never a panic.
func FuzzLookup(f *testing.F) {
	f.Add(kexecRoot(f))
	f.Fuzz(func(t *testing.T, blob []byte) {
		_ = goLookups(blob)
	})
}

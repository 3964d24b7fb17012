package realkernel

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"
)

func writeArchive(t *testing.T, path string, recs ...cpio.Record) {
	t.Helper()
	var b bytes.Buffer
	w := cpio.Newc.Writer(&b)
	if err := cpio.WriteRecords(w, recs); err != nil {
		t.Fatal(err)
	}
	if err := cpio.WriteTrailer(w); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readArchive(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(b)))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range recs {
		data := make([]byte, r.FileSize)
		if r.FileSize > 0 {
			if _, err := r.ReadAt(data, 0); err != nil {
				t.Fatal(err)
			}
		}
		got[r.Name] = string(data)
	}
	return got
}

// TestRetargetInitramfs: only kernels/next changes; an archive without it
// is refused.
func TestRetargetInitramfs(t *testing.T) {
	dir := t.TempDir()
	kernel := filepath.Join(dir, "bzImage-7.3")
	if err := os.WriteFile(kernel, []byte("MZ the 7.3 kernel, longer than the old one"), 0o644); err != nil {
		t.Fatal(err)
	}
	src, dst := filepath.Join(dir, "src.cpio"), filepath.Join(dir, "dst.cpio")
	writeArchive(t, src,
		cpio.Directory("kernels", 0o755),
		cpio.StaticFile("kernels/next", "MZ 7.2", 0o644),
		cpio.StaticFile("kernels/alt", "MZ alt", 0o644),
		cpio.StaticFile("bbin/bb", "ELF", 0o755))
	if err := retargetInitramfs(src, dst, kernel); err != nil {
		t.Fatal(err)
	}
	got := readArchive(t, dst)
	want := map[string]string{"kernels": "", "kernels/next": "MZ the 7.3 kernel, longer than the old one", "kernels/alt": "MZ alt", "bbin/bb": "ELF"}
	for name, data := range want {
		if g, ok := got[name]; !ok || g != data {
			t.Errorf("%s = %q (present %v), want %q", name, g, ok, data)
		}
	}
	if len(got) != len(want) {
		t.Errorf("records %v, want %v", got, want)
	}

	writeArchive(t, src, cpio.StaticFile("init", "ELF", 0o755))
	if err := retargetInitramfs(src, dst, kernel); !errors.Is(err, errNoNextKernel) {
		t.Errorf("no kernels/next: %v, want %v", err, errNoNextKernel)
	}
}

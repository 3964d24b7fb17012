package pid1

import (
	"bytes"
	"io"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"
)

func TestWriteInitramfs(t *testing.T) {
	files := []File{
		{Name: "init", Data: []byte("\x7fELF init"), Mode: 0o755},
		{Name: "bzImage", Data: []byte("MZ kernel"), Mode: 0o644},
	}
	var a, b bytes.Buffer
	if err := WriteInitramfs(&a, files...); err != nil {
		t.Fatal(err)
	}
	if err := WriteInitramfs(&b, files...); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two packs of the same files differ")
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(a.Bytes())))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]cpio.Record{}
	for _, r := range recs {
		got[r.Name] = r
	}
	for _, f := range files {
		r, ok := got[f.Name]
		if !ok {
			t.Errorf("no %s in the archive", f.Name)
			continue
		}
		content, err := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
		if err != nil || !bytes.Equal(content, f.Data) {
			t.Errorf("%s = %q, %v; want %q", f.Name, content, err, f.Data)
		}
		if r.Mode != cpio.S_IFREG|f.Mode {
			t.Errorf("%s mode %o, want %o", f.Name, r.Mode, cpio.S_IFREG|f.Mode)
		}
	}
	if r, ok := got["dev/console"]; !ok || r.Mode&cpio.S_IFMT != cpio.S_IFCHR || r.Rmajor != 5 || r.Rminor != 1 {
		t.Errorf("dev/console %+v, want the character device 5:1", r.Info)
	}
	for _, dir := range []string{"dev", "proc", "sys", "tmp"} {
		if r, ok := got[dir]; !ok || r.Mode&cpio.S_IFMT != cpio.S_IFDIR {
			t.Errorf("%s: %+v, want a directory", dir, r.Info)
		}
	}
}

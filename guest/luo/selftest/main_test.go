package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"
)

// TestPack packs an initramfs from files on the host and reads it back:
// this executable as /init, the kernel and the selftest, all executable.
func TestPack(t *testing.T) {
	dir := t.TempDir()
	kernel, selftest, out := filepath.Join(dir, "bzImage"), filepath.Join(dir, "st"), filepath.Join(dir, "out.cpio")
	for path, data := range map[string]string{kernel: "MZ kernel", selftest: "\x7fELF selftest"} {
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		name    string
		args    []string
		wantErr bool
	}{
		{"all three", []string{"pack", "-kernel", kernel, "-selftest", selftest, "-o", out}, false},
		{"no selftest", []string{"pack", "-kernel", kernel, "-o", out}, true},
		{"missing selftest file", []string{"pack", "-kernel", kernel, "-selftest", filepath.Join(dir, "none"), "-o", out}, true},
		{"not pack", []string{"unpack"}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := pack(tt.args); (err != nil) != tt.wantErr {
				t.Fatalf("pack: %v, want error %v", err, tt.wantErr)
			}
		})
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(b)))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]cpio.Record{}
	for _, r := range recs {
		got[r.Name] = r
	}
	for name, want := range map[string]string{kernelPath: "MZ kernel", selftestPath: "\x7fELF selftest"} {
		r, ok := got[name]
		if !ok {
			t.Fatalf("no /%s in %v", name, got)
		}
		content, err := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
		if err != nil || string(content) != want {
			t.Errorf("/%s = %q, %v; want %q", name, content, err, want)
		}
	}
	for _, name := range rootFiles {
		if r, ok := got[name]; !ok || r.Mode&0o111 == 0 {
			t.Errorf("/%s: %+v, want an executable file", name, r.Info)
		}
	}
}

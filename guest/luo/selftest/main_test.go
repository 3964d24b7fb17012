package main

import (
	"bytes"
	"io"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"
)

func TestWriteInitramfs(t *testing.T) {
	full := map[string][]byte{initPath: []byte("init"), kernelPath: []byte("kernel"), selftestPath: []byte("selftest")}
	tests := []struct {
		name    string
		files   map[string][]byte
		wantErr bool
	}{
		{"all three", full, false},
		{"no selftest", map[string][]byte{initPath: []byte("init"), kernelPath: []byte("kernel")}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := writeInitramfs(&buf, tt.files)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(buf.Bytes())))
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, r := range recs {
				if r.ReaderAt == nil {
					continue
				}
				b, err := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
				if err != nil {
					t.Fatal(err)
				}
				got[r.Name] = string(b)
			}
			for name, want := range tt.files {
				if got[name] != string(want) {
					t.Errorf("/%s holds %q, want %q", name, got[name], want)
				}
			}
			if _, ok := got["dev/console"]; !ok {
				t.Errorf("no /dev/console record in %v", got)
			}
		})
	}
}

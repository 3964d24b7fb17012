package kexec

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// retainedFrom repacks root and saves the archive as a retained initrd
// would hold it.
func retainedFrom(t *testing.T, root string) (string, []byte) {
	t.Helper()
	f, _, err := repack(root, nil, "")
	mustDo(t, err)
	defer f.Close()
	b, err := io.ReadAll(f)
	mustDo(t, err)
	path := filepath.Join(t.TempDir(), "initrd")
	mustDo(t, os.WriteFile(path, b, 0o444))
	return path, b
}

// unpacked sets every regular file's mtime to 0, as the kernel's unpacker
// leaves the files of an archive whose mtimes are 0.
func unpacked(t *testing.T, root string) {
	t.Helper()
	mustDo(t, filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			err = os.Chtimes(p, time.Unix(0, 0), time.Unix(0, 0))
		}
		return err
	}))
}

func archiveOf(t *testing.T, f *os.File) []byte {
	t.Helper()
	_, err := f.Seek(0, io.SeekStart)
	mustDo(t, err)
	b, err := io.ReadAll(f)
	mustDo(t, err)
	return b
}

// TestRepackReusesRetainedInitrd: when the retained initrd is the archive
// the repack would write, it is returned itself; any change to the tree
// makes a fresh memfd with the change in it.
func TestRepackReusesRetainedInitrd(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, root string)
		reuse  bool
	}{
		{"unchanged, as unpacked", func(t *testing.T, root string) { unpacked(t, root) }, true},
		// Files written since the unpack are compared byte for byte.
		{"unchanged, rewritten with the same bytes", func(t *testing.T, root string) {
			b, err := os.ReadFile(filepath.Join(root, "a/z"))
			mustDo(t, err)
			mustDo(t, os.WriteFile(filepath.Join(root, "a/z"), b, 0o644))
		}, true},
		{"same size, other bytes", func(t *testing.T, root string) {
			unpacked(t, root)
			b, err := os.ReadFile(filepath.Join(root, "a/z"))
			mustDo(t, err)
			b[0] ^= 1
			mustDo(t, os.WriteFile(filepath.Join(root, "a/z"), b, 0o644))
		}, false},
		{"a file added", func(t *testing.T, root string) {
			unpacked(t, root)
			mustDo(t, os.WriteFile(filepath.Join(root, "a/new"), []byte("x"), 0o644))
		}, false},
		{"a file removed", func(t *testing.T, root string) {
			unpacked(t, root)
			mustDo(t, os.Remove(filepath.Join(root, "a/z")))
		}, false},
		{"a mode changed", func(t *testing.T, root string) {
			unpacked(t, root)
			mustDo(t, os.Chmod(filepath.Join(root, "a/z"), 0o600))
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, _ := buildTree(t)
			retained, before := retainedFrom(t, root)
			tt.change(t, root)
			f, stats, err := repack(root, nil, retained)
			mustDo(t, err)
			defer f.Close()
			got := archiveOf(t, f)
			if reused := f.Name() == retained; reused != tt.reuse {
				t.Fatalf("returned %s, want the retained initrd: %v", f.Name(), tt.reuse)
			}
			fresh, _, err := repack(root, nil, "")
			mustDo(t, err)
			defer fresh.Close()
			want := archiveOf(t, fresh)
			if !bytes.Equal(got, want) {
				t.Errorf("the archive returned is not the repack of the tree (%d bytes, want %d)", len(got), len(want))
			}
			if tt.reuse != bytes.Equal(want, before) {
				t.Errorf("the tree's archive equals the retained one: %v, want %v", !tt.reuse, tt.reuse)
			}
			if stats.Bytes != int64(len(want)) {
				t.Errorf("stats %+v for %d bytes", stats, len(want))
			}
		})
	}
}

// TestRepackRetainedInitrdUnusable: a retained initrd that is missing,
// empty, cut short or longer than the archive is not used.
func TestRepackRetainedInitrdUnusable(t *testing.T) {
	root, _ := buildTree(t)
	_, good := retainedFrom(t, root)
	unpacked(t, root)
	dir := t.TempDir()
	for name, content := range map[string][]byte{
		"empty": {}, "cut": good[:len(good)-4], "longer": append(bytes.Clone(good), 0, 0, 0, 0), "garbage": bytes.Repeat([]byte("x"), len(good)),
	} {
		path := filepath.Join(dir, name)
		mustDo(t, os.WriteFile(path, content, 0o444))
		for _, p := range []string{path, filepath.Join(dir, "missing"), dir} {
			f, _, err := repack(root, nil, p)
			mustDo(t, err)
			if !strings.HasPrefix(f.Name(), "memfd:") {
				t.Errorf("%s: returned %s, want a fresh memfd", p, f.Name())
			}
			if got := archiveOf(t, f); !bytes.Equal(got, good) {
				t.Errorf("%s: fresh archive differs from the repack", p)
			}
			f.Close()
		}
	}
}

package kexec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/u-root/u-root/pkg/cpio"
	"golang.org/x/sys/unix"
)

// entry is what a test expects of one archive record.
type entry struct {
	name string
	mode uint64 // type and permission bits
	data string // file contents or link target
	rdev [2]uint64
}

func (e entry) String() string {
	return fmt.Sprintf("%s %#o %q %v", e.name, e.mode, e.data, e.rdev)
}

// readArchive reads f back with u-root's newc reader, checking the
// reproducibility fields on the way.
func readArchive(t *testing.T, f *os.File) ([]entry, []cpio.Record) {
	t.Helper()
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(f))
	if err != nil {
		t.Fatalf("reading the archive back: %v", err)
	}
	var out []entry
	for _, r := range recs {
		if r.MTime != 0 || r.Major != 0 || r.Minor != 0 {
			t.Errorf("%s: mtime %d dev %d:%d, want all 0", r.Name, r.MTime, r.Major, r.Minor)
		}
		data, err := io.ReadAll(io.NewSectionReader(r, 0, int64(r.FileSize)))
		if err != nil {
			t.Fatalf("%s: %v", r.Name, err)
		}
		out = append(out, entry{r.Name, r.Mode &^ 0o7000 & 0o170777, string(data), [2]uint64{r.Rmajor, r.Rminor}})
	}
	return out, recs
}

func mustDo(t *testing.T, errs ...error) {
	t.Helper()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// buildTree makes a small root file system and returns its path and the
// records its repack must hold, in archive order.
func buildTree(t *testing.T) (string, []entry) {
	t.Helper()
	root := t.TempDir()
	mustDo(t, os.Chmod(root, 0o755))
	p := func(name string) string { return filepath.Join(root, name) }
	// Several 32 KiB copy chunks, no pattern a misordered chunk would
	// repeat, and a multiple of 4 bytes: no padding follows the data.
	var sb strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&sb, "%07d\n", i)
	}
	bb := sb.String()
	for _, d := range []string{"a/b/c", "bbin", "data", "dev", "etc", "run", "tmp/cache"} {
		mustDo(t, os.MkdirAll(p(d), 0o755))
	}
	mustDo(t,
		os.WriteFile(p("bbin/bb"), []byte(bb), 0o755),
		os.Symlink("bb", p("bbin/ls")),
		os.Symlink("bb", p("bbin/cat")),
		os.Symlink("/nonexistent/target", p("dangling")),
		os.WriteFile(p("a/b/c/deep.txt"), []byte("deep\n"), 0o600),
		os.WriteFile(p("a/z"), []byte("z"), 0o644),
		os.WriteFile(p("a.txt"), []byte("after the a/ subtree"), 0o644),
		os.WriteFile(p("B"), []byte("upper case sorts first"), 0o644),
		os.WriteFile(p("etc/empty"), nil, 0o644),
		os.WriteFile(p("data/h1"), []byte("hard-linked"), 0o644),
		os.Link(p("data/h1"), p("data/h2")),
		unix.Mkfifo(p("run/fifo"), 0o644),
		os.WriteFile(p("tmp/cache/junk"), []byte("excluded"), 0o644),
	)
	// Chmod after creation: the umask must not decide the expected modes.
	mustDo(t, os.Chmod(p("a/b/c/deep.txt"), 0o600), os.Chmod(p("bbin/bb"), 0o755))
	l, err := net.Listen("unix", p("run/sock"))
	mustDo(t, err)
	t.Cleanup(func() { l.Close() })
	want := []entry{
		{name: "B", mode: unix.S_IFREG | 0o644, data: "upper case sorts first"},
		{name: "a", mode: unix.S_IFDIR | 0o755},
		{name: "a/b", mode: unix.S_IFDIR | 0o755},
		{name: "a/b/c", mode: unix.S_IFDIR | 0o755},
		{name: "a/b/c/deep.txt", mode: unix.S_IFREG | 0o600, data: "deep\n"},
		{name: "a/z", mode: unix.S_IFREG | 0o644, data: "z"},
		{name: "a.txt", mode: unix.S_IFREG | 0o644, data: "after the a/ subtree"},
		{name: "bbin", mode: unix.S_IFDIR | 0o755},
		{name: "bbin/bb", mode: unix.S_IFREG | 0o755, data: bb},
		{name: "bbin/cat", mode: unix.S_IFLNK | 0o777, data: "bb"},
		{name: "bbin/ls", mode: unix.S_IFLNK | 0o777, data: "bb"},
		{name: "dangling", mode: unix.S_IFLNK | 0o777, data: "/nonexistent/target"},
		{name: "data", mode: unix.S_IFDIR | 0o755},
		{name: "data/h1", mode: unix.S_IFREG | 0o644, data: "hard-linked"},
		{name: "data/h2", mode: unix.S_IFREG | 0o644}, // linked to h1 by inode
		{name: "dev", mode: unix.S_IFDIR | 0o755},
		{name: "etc", mode: unix.S_IFDIR | 0o755},
		{name: "etc/empty", mode: unix.S_IFREG | 0o644},
		{name: "run", mode: unix.S_IFDIR | 0o755},
		{name: "run/fifo", mode: unix.S_IFIFO | 0o644}, // run/sock dropped
		{name: "tmp", mode: unix.S_IFDIR | 0o755},
		{name: "dev/console", mode: unix.S_IFCHR | 0o600, rdev: [2]uint64{5, 1}},
	}
	return root, want
}

func TestRepackRootfs(t *testing.T) {
	old := unix.Umask(0o022)
	defer unix.Umask(old)
	root, want := buildTree(t)
	f, stats, err := RepackRootfs(root, []string{"/tmp/cache", "missing/is/fine"})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if pos, _ := f.Seek(0, io.SeekCurrent); pos != 0 {
		t.Errorf("returned file at offset %d, want 0", pos)
	}
	got, recs := readArchive(t, f)
	if !slices.Equal(got, want) {
		t.Errorf("archive records:\n%s\nwant:\n%s", joinLines(got), joinLines(want))
	}
	fi, err := f.Stat()
	mustDo(t, err)
	if stats.Files != len(recs) || stats.Bytes != fi.Size() {
		t.Errorf("stats = %+v, archive has %d records in %d bytes", stats, len(recs), fi.Size())
	}
	inos := map[string]uint64{}
	for _, r := range recs {
		inos[r.Name] = r.Ino
	}
	if inos["data/h1"] != inos["data/h2"] || inos["data/h1"] == inos["a/z"] || inos["a/z"] == 0 {
		t.Errorf("inode numbers h1=%d h2=%d a/z=%d: want h1 == h2, distinct from a/z", inos["data/h1"], inos["data/h2"], inos["a/z"])
	}
	if _, err := f.Write([]byte("x")); !errors.Is(err, unix.EPERM) {
		t.Errorf("writing the sealed memfd: %v, want EPERM", err)
	}
	if listing, ok := gnuCpioList(t, f); ok {
		var names []string
		for _, e := range want {
			names = append(names, e.name)
		}
		if !slices.Equal(listing, names) {
			t.Errorf("GNU cpio lists %q, want %q", listing, names)
		}
	}
}

// gnuCpioList lists f with GNU cpio, an independent newc reader.
func gnuCpioList(t *testing.T, f *os.File) ([]string, bool) {
	if _, err := exec.LookPath("cpio"); err != nil {
		return nil, false
	}
	_, err := f.Seek(0, io.SeekStart)
	mustDo(t, err)
	cmd := exec.Command("cpio", "-t", "--quiet")
	cmd.Stdin = f
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cpio -t: %v", err)
	}
	return strings.Fields(string(out)), true
}

func joinLines[T fmt.Stringer](xs []T) string {
	var b strings.Builder
	for _, x := range xs {
		b.WriteString("\t" + x.String() + "\n")
	}
	return b.String()
}

func TestRepackRootfsReproducible(t *testing.T) {
	root, _ := buildTree(t)
	first := repackBytes(t, root)
	// New mtimes and a rewritten file with the same contents change nothing.
	mustDo(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink != 0 || d.Type()&fs.ModeSocket != 0 {
			return err
		}
		when := time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC)
		return os.Chtimes(p, when, when)
	}))
	if second := repackBytes(t, root); !bytes.Equal(first, second) {
		t.Fatalf("two repacks differ: %d and %d bytes", len(first), len(second))
	}
}

func repackBytes(t *testing.T, root string) []byte {
	t.Helper()
	f, _, err := RepackRootfs(root, nil)
	mustDo(t, err)
	defer f.Close()
	b, err := io.ReadAll(f)
	mustDo(t, err)
	return b
}

// A volatile mount point is kept empty, a tmpfs elsewhere is packed whole;
// /dev/console comes from the tree when it is there.
func TestRepackRootfsMountPointsAndConsole(t *testing.T) {
	root := t.TempDir()
	mustDo(t, os.MkdirAll(filepath.Join(root, "proc"), 0o555), os.MkdirAll(filepath.Join(root, "dev"), 0o755))
	if err := unix.Mount("tmpfs", filepath.Join(root, "proc"), "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs to stand for /proc: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(filepath.Join(root, "proc"), unix.MNT_DETACH) })
	mustDo(t, os.WriteFile(filepath.Join(root, "proc", "leak"), []byte("must not be packed"), 0o644))
	// A tmpfs elsewhere holds running state (u-root's /etc): packed whole.
	mustDo(t, os.MkdirAll(filepath.Join(root, "etc"), 0o755))
	mustDo(t, unix.Mount("tmpfs", filepath.Join(root, "etc"), "tmpfs", 0, "size=1m,mode=0755"))
	t.Cleanup(func() { unix.Unmount(filepath.Join(root, "etc"), unix.MNT_DETACH) })
	mustDo(t, os.MkdirAll(filepath.Join(root, "etc", "sub"), 0o755), os.Chmod(filepath.Join(root, "etc", "sub"), 0o755))
	mustDo(t, os.WriteFile(filepath.Join(root, "etc", "sub", "flags"), []byte("-v"), 0o644))
	mustDo(t, os.Chmod(filepath.Join(root, "etc", "sub", "flags"), 0o644))
	if err := unix.Mknod(filepath.Join(root, "dev", "console"), unix.S_IFCHR|0o620, int(unix.Mkdev(5, 1))); err != nil {
		t.Skipf("cannot mknod: %v", err)
	}
	mustDo(t, unix.Mknod(filepath.Join(root, "dev", "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	mustDo(t, os.Chmod(filepath.Join(root, "dev", "null"), 0o666), os.Chmod(filepath.Join(root, "dev", "console"), 0o620))
	mustDo(t, os.Chmod(filepath.Join(root, "proc"), 0o555))
	f, _, err := RepackRootfs(root, nil)
	mustDo(t, err)
	defer f.Close()
	got, _ := readArchive(t, f)
	want := []entry{
		{name: "dev", mode: unix.S_IFDIR | 0o755},
		{name: "dev/console", mode: unix.S_IFCHR | 0o620, rdev: [2]uint64{5, 1}},
		{name: "dev/null", mode: unix.S_IFCHR | 0o666, rdev: [2]uint64{1, 3}},
		{name: "etc", mode: unix.S_IFDIR | 0o755},
		{name: "etc/sub", mode: unix.S_IFDIR | 0o755},
		{name: "etc/sub/flags", mode: unix.S_IFREG | 0o644, data: "-v"},
		{name: "proc", mode: unix.S_IFDIR | 0o555},
	}
	if !slices.Equal(got, want) {
		t.Errorf("archive records:\n%s\nwant:\n%s", joinLines(got), joinLines(want))
	}
}

func TestRepackRootfsErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	mustDo(t, os.WriteFile(file, nil, 0o644))
	tests := []struct {
		name    string
		root    string
		exclude []string
		want    string
	}{
		{"missing root", "/nonexistent/root", nil, "no such file"},
		{"root is a file", file, nil, "not a directory"},
		{"excluding everything", t.TempDir(), []string{"/"}, "whole tree"},
		{"excluding everything, relative", t.TempDir(), []string{"a/.."}, "whole tree"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, _, err := RepackRootfs(tt.root, tt.exclude)
			if err == nil || !strings.Contains(err.Error(), tt.want) || f != nil {
				t.Fatalf("RepackRootfs(%q, %q) = %v, %v; want nil and an error mentioning %q", tt.root, tt.exclude, f, err, tt.want)
			}
		})
	}
}

// BenchmarkRepack packs a 32 MiB tree: a few large files (the u-root
// busybox binary), many small ones, and symlinks.
func BenchmarkRepack(b *testing.B) {
	root := b.TempDir()
	large, small := bytes.Repeat([]byte{0xa5}, 1<<20), bytes.Repeat([]byte{0x5a}, 16<<10)
	for i := range 16 {
		mustDoB(b, os.WriteFile(filepath.Join(root, fmt.Sprintf("large%02d", i)), large, 0o755))
	}
	for d := range 16 {
		dir := filepath.Join(root, fmt.Sprintf("dir%02d", d))
		mustDoB(b, os.Mkdir(dir, 0o755))
		for i := range 64 {
			mustDoB(b, os.WriteFile(filepath.Join(dir, fmt.Sprintf("small%02d", i)), small, 0o644))
			mustDoB(b, os.Symlink("../large00", filepath.Join(dir, fmt.Sprintf("link%02d", i))))
		}
	}
	var stats RepackStats
	b.ResetTimer()
	for b.Loop() {
		f, s, err := RepackRootfs(root, nil)
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
		stats = s
	}
	b.SetBytes(stats.Bytes)
	b.ReportMetric(float64(stats.Files)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func mustDoB(b *testing.B, err error) {
	if err != nil {
		b.Fatal(err)
	}
}

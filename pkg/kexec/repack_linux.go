package kexec

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/u-root/u-root/pkg/cpio"
	"golang.org/x/sys/unix"
)

// memfdName shows in /proc/PID/fd as "/memfd:kho-sim-initrd".
const memfdName = "kho-sim-initrd"

// RepackRootfs writes the tree at root ("" means "/") as an uncompressed
// newc cpio into a sealed memfd, ready to be the next kernel's initrd, and
// returns it positioned at 0.
//
// A directory on another device than root (a mount point: /proc, /sys, a
// devtmpfs /dev, a tmpfs /tmp) is kept, empty, so the next init can mount on
// it again; a tmpfs or ramfs mounted elsewhere (u-root's /etc) is packed
// with its contents. Paths in exclude (relative to root, with or without a
// leading "/") are left out with everything under them. Symlinks are kept as links,
// hard links as newc hard links, device nodes and FIFOs as nodes; sockets
// are dropped. If the archive would lack dev/console, a character device
// 5:1 is added there: the kernel opens it for init's stdio before init runs.
//
// The archive is reproducible: entries come parent first in byte order of
// their names, inode numbers count up in that order, and mtimes and device
// numbers of the holding file system are zero; owners and modes are kept.
func RepackRootfs(root string, exclude []string) (*os.File, RepackStats, error) {
	if root == "" {
		root = "/"
	}
	p := packer{base: strings.TrimSuffix(filepath.Clean(root), "/"), skip: map[string]bool{}, links: map[[2]uint64]uint64{}}
	for _, e := range exclude {
		rel := strings.Trim(path.Clean("/"+e), "/")
		if rel == "" {
			return nil, RepackStats{}, fmt.Errorf("kexec: repack %s: exclude %q would leave out the whole tree", root, e)
		}
		p.skip[rel] = true
	}
	var st unix.Stat_t
	if err := unix.Stat(root, &st); err != nil {
		return nil, RepackStats{}, fmt.Errorf("kexec: repack %s: %w", root, &fs.PathError{Op: "stat", Path: root, Err: err})
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil, RepackStats{}, fmt.Errorf("kexec: repack %s: not a directory", root)
	}
	p.rootDev = uint64(st.Dev) // uint32 on mips

	fd, err := unix.MemfdCreate(memfdName, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, RepackStats{}, fmt.Errorf("kexec: repack %s: memfd_create: %w", root, err)
	}
	f := os.NewFile(uintptr(fd), "memfd:"+memfdName)
	stats, err := p.pack(f)
	if err != nil {
		f.Close()
		return nil, RepackStats{}, fmt.Errorf("kexec: repack %s: %w", root, err)
	}
	return f, stats, nil
}

// packer holds the state of one archive being written.
type packer struct {
	base    string // root without trailing "/"; "" for "/"
	rootDev uint64
	skip    map[string]bool      // excluded names, relative to root
	links   map[[2]uint64]uint64 // (st_dev, st_ino) of hard-linked files -> cpio inode
	w       cpio.RecordWriter
	out     *sink
	ino     uint64
	files   int
	dev     bool // a "dev" record was written
	console bool // a "dev/console" record was written
}

func (p *packer) pack(f *os.File) (RepackStats, error) {
	// newc writes a header, a name and padding per record as separate small
	// writes: buffer them so the memfd sees large writes only.
	p.out = &sink{memfd: f, buf: bufio.NewWriterSize(f, 64<<10)}
	p.w = cpio.Newc.Writer(p.out)
	err := p.walk("")
	if err == nil && !p.console && !p.dev {
		err = p.write(cpio.Directory("dev", 0o755))
	}
	if err == nil && !p.console {
		err = p.write(cpio.CharDev("dev/console", 0o600, 5, 1))
	}
	if err == nil {
		err = cpio.WriteTrailer(p.w)
	}
	if err == nil {
		err = p.out.buf.Flush()
	}
	if err != nil {
		return RepackStats{}, err
	}
	size, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return RepackStats{}, err
	}
	// Sealed, the initrd cannot change between now and kexec_file_load.
	const seals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		return RepackStats{}, fmt.Errorf("sealing the memfd: %w", err)
	}
	_, err = f.Seek(0, io.SeekStart)
	return RepackStats{Files: p.files, Bytes: size}, err
}

// walk writes the entries of directory rel ("" for root), then recurses.
func (p *packer) walk(rel string) error {
	dir := p.base + "/" + rel
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return err
	}
	slices.Sort(names)
	for _, name := range names {
		r := name
		if rel != "" {
			r = rel + "/" + name
		}
		if p.skip[r] {
			continue
		}
		full := p.base + "/" + r
		var st unix.Stat_t
		if err := unix.Lstat(full, &st); errors.Is(err, unix.ENOENT) {
			continue // gone since readdir: a live system churns
		} else if err != nil {
			return &fs.PathError{Op: "lstat", Path: full, Err: err}
		}
		if err := p.add(full, r, &st); err != nil {
			return err
		}
		// A directory on another device is a mount point: keep it empty,
		// unless it holds running state in memory (see carriesState).
		if st.Mode&unix.S_IFMT == unix.S_IFDIR && (uint64(st.Dev) == p.rootDev || carriesState(full, r)) {
			if err := p.walk(r); err != nil {
				return err
			}
		}
	}
	return nil
}

// carriesState reports whether a mount point at rel holds part of the
// running root filesystem: a tmpfs or ramfs outside the mount points whose
// contents belong to one boot only (the next init mounts those afresh).
// u-root's init, for one, moves /etc onto a tmpfs (a bind mount of
// /tmp/etc), and the uinit's flags live there.
func carriesState(full, rel string) bool {
	top, _, _ := strings.Cut(rel, "/")
	switch top {
	case "dev", "proc", "sys", "run", "tmp":
		return false
	}
	var sfs unix.Statfs_t
	if unix.Statfs(full, &sfs) != nil {
		return false
	}
	return sfs.Type == unix.TMPFS_MAGIC || sfs.Type == unix.RAMFS_MAGIC
}

// add writes the record for the file at full, named rel in the archive.
func (p *packer) add(full, rel string, st *unix.Stat_t) error {
	info := cpio.Info{
		Mode:  uint64(st.Mode),
		UID:   uint64(st.Uid),
		GID:   uint64(st.Gid),
		NLink: uint64(st.Nlink),
		Name:  rel,
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFSOCK:
		return nil // a socket is only meaningful with its listener
	case unix.S_IFLNK:
		target, err := os.Readlink(full)
		if err != nil {
			return err
		}
		return p.write(cpio.StaticRecord([]byte(target), info))
	case unix.S_IFCHR, unix.S_IFBLK:
		info.Rmajor, info.Rminor = uint64(unix.Major(uint64(st.Rdev))), uint64(unix.Minor(uint64(st.Rdev)))
	case unix.S_IFREG:
		return p.addFile(full, info, st)
	}
	return p.write(cpio.Record{Info: info})
}

func (p *packer) addFile(full string, info cpio.Info, st *unix.Stat_t) error {
	if st.Nlink > 1 {
		key := [2]uint64{uint64(st.Dev), st.Ino}
		if ino, ok := p.links[key]; ok {
			// The kernel links names sharing an inode number; only the
			// first carries the data.
			return p.writeIno(cpio.Record{Info: info}, ino)
		}
		p.links[key] = p.ino + 1
	}
	if st.Size == 0 {
		return p.write(cpio.Record{Info: info})
	}
	if st.Size > math.MaxUint32 {
		return fmt.Errorf("%s: %d bytes do not fit a newc record (4 GiB at most)", full, st.Size)
	}
	f, err := os.Open(full)
	if err != nil {
		return err
	}
	defer f.Close()
	info.FileSize = uint64(st.Size)
	// The size is the one lstat saw: a file that grows meanwhile is cut
	// there, one that shrinks fails sendfile's count.
	err = p.write(cpio.Record{Info: info, ReaderAt: fileData{f: f, size: st.Size, out: p.out}})
	if err == nil {
		err = p.out.flushData() // before f closes
	}
	if err != nil {
		return fmt.Errorf("%s: %w", full, err)
	}
	return nil
}

// The data of regular files (the next kernel, kho-sim's own binary: nearly
// all of the archive) never passes through this process. u-root's newc
// writer copies a record's data with io.Copy, one ReadAt and then one
// Write of what it read, chunk by chunk; fileData.ReadAt reads nothing and
// tells the sink which bytes of the file the next Write stands for, and
// the sink moves them with sendfile(2) from the file's page cache into the
// memfd. That is one copy, in the kernel, where reading into a buffer and
// writing it out again was three (read, the buffer, write); under
// emulation the copies were most of the repack. u-root still writes every
// header, name and padding, and counts the data for its size check.

// fileData is a regular file's data as the newc writer reads it.
type fileData struct {
	f    *os.File
	size int64
	out  *sink
}

func (d fileData) ReadAt(p []byte, off int64) (int, error) {
	if off >= d.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), d.size-off))
	if err := d.out.expect(d.f, off, n); err != nil {
		return 0, err
	}
	return n, nil
}

// sink is the newc writer's output: the memfd behind a buffer. The newc
// writer hands over a file's data 32 KiB at a time; the sink joins those
// pieces and moves each file's data with one sendfile loop when the file
// ends (flushData), not one system call per piece: under emulation the
// calls were a third of the repack.
type sink struct {
	memfd   *os.File
	buf     *bufio.Writer
	src     *os.File // set by fileData.ReadAt: the next Write is src[off:off+n]
	off     int64
	n       int
	pending bool
	data    span // file data written but not yet sent
}

// span is a run of bytes of one source file.
type span struct {
	src *os.File
	off int64
	n   int64
}

func (s *sink) expect(src *os.File, off int64, n int) error {
	if s.pending {
		return errors.New("repack: file data read twice before it was written")
	}
	s.src, s.off, s.n, s.pending = src, off, n, true
	return nil
}

func (s *sink) Write(b []byte) (int, error) {
	if !s.pending {
		if err := s.flushData(); err != nil {
			return 0, err
		}
		return s.buf.Write(b)
	}
	s.pending = false
	if len(b) != s.n {
		return 0, fmt.Errorf("repack: %d bytes of file data written, %d read", len(b), s.n)
	}
	if d := &s.data; d.src == s.src && d.off+d.n == s.off {
		d.n += int64(s.n)
		return s.n, nil
	}
	if err := s.flushData(); err != nil {
		return 0, err
	}
	// What the buffer holds (the record's header and name) comes first.
	if err := s.buf.Flush(); err != nil {
		return 0, err
	}
	s.data = span{src: s.src, off: s.off, n: int64(s.n)}
	return s.n, nil
}

// flushData sends the file data written so far from the file's page cache
// into the memfd.
func (s *sink) flushData() error {
	d := s.data
	if d.src == nil {
		return nil
	}
	s.data = span{}
	off, end := d.off, d.off+d.n
	for off < end {
		m, err := unix.Sendfile(int(s.memfd.Fd()), int(d.src.Fd()), &off, int(min(end-off, 1<<30)))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("sendfile: %w", err)
		}
		if m == 0 {
			return fmt.Errorf("sendfile: the file ends at %d, before the %d bytes lstat saw", off, end)
		}
	}
	return nil
}

// write gives r the next inode number and writes it.
func (p *packer) write(r cpio.Record) error {
	return p.writeIno(r, p.ino+1)
}

func (p *packer) writeIno(r cpio.Record, ino uint64) error {
	r.Ino = ino
	p.ino = max(p.ino, ino)
	if err := p.w.WriteRecord(r); err != nil {
		return fmt.Errorf("writing %q: %w", r.Name, err)
	}
	p.files++
	p.dev = p.dev || r.Name == "dev"
	p.console = p.console || r.Name == "dev/console"
	return nil
}

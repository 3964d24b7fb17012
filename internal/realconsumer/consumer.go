// Package realconsumer is kho-sim's user space in a real Linux 7.2 LUO
// kernel that booted with kho-sim's handover: it retrieves kho-sim's
// sessions and memfds through /dev/liveupdate (kernel/liveupdate/
// luo_session.c, mm/memfd_luo.c), compares every byte, the size, the
// position and the seals with what kho-sim wrote, and finishes the
// sessions, which lets the kernel finish the FLBs the files depend on.
package realconsumer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/internal/sim"
	"github.com/kho-sim/kho-sim/pkg/memfd"
)

// Prefix starts every line the consumer prints.
const Prefix = "kho-sim consumer: "

// Sessions retrieves the sessions the previous kernel handed over
// (liveupdate.RetrieveSession on /dev/liveupdate).
type Sessions interface {
	Retrieve(name string) (Session, error)
}

// Session is one retrieved session.
type Session interface {
	// RetrieveFD is LIVEUPDATE_SESSION_RETRIEVE_FD.
	RetrieveFD(token uint64) (*os.File, error)
	// Finish is LIVEUPDATE_SESSION_FINISH.
	Finish() error
	Close() error
}

// Result is what Run found.
type Result struct {
	Sessions, Files int
	Bytes           uint64
	Problems        []string
}

// OK reports whether every file came back as written.
func (r Result) OK() bool { return len(r.Problems) == 0 }

// Run retrieves the sessions of files, checks each file, and finishes
// each session whose files were all retrieved. It prints one line per file
// and session to out.
func Run(s Sessions, files []sim.MemfdFile, out io.Writer) Result {
	var r Result
	var order []string
	bySession := map[string][]sim.MemfdFile{}
	for _, f := range files {
		if _, ok := bySession[f.Session]; !ok {
			order = append(order, f.Session)
		}
		bySession[f.Session] = append(bySession[f.Session], f)
	}
	fail := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		r.Problems = append(r.Problems, msg)
		fmt.Fprintf(out, "%snot ok: %s\n", Prefix, msg)
	}
	for _, name := range order {
		sess, err := s.Retrieve(name)
		if err != nil {
			fail("retrieve session %q: %v", name, err)
			continue
		}
		r.Sessions++
		retrieved := true
		for _, f := range bySession[name] {
			fd, err := sess.RetrieveFD(f.Token)
			if err != nil {
				fail("%s: retrieve: %v", f.Name(), err)
				retrieved = false
				continue
			}
			err = Check(fd, f.Spec)
			fd.Close()
			if err != nil {
				fail("%s: %v", f.Name(), err)
				continue
			}
			r.Files++
			r.Bytes += f.Spec.Size
			fmt.Fprintf(out, "%sok: %s: %d bytes as written (crc32 %#08x), pos %d, seals %#x\n", Prefix, f.Name(), f.Spec.Size, mustChecksum(f.Spec), f.Spec.Pos, memfd.RestoredSeals(f.Spec.Seals))
		}
		// A session finishes only when every file was retrieved
		// (luo_session_finish fails otherwise).
		if retrieved {
			if err := sess.Finish(); err != nil {
				fail("finish session %q: %v", name, err)
			} else {
				fmt.Fprintf(out, "%sok: session %s finished\n", Prefix, name)
			}
		}
		sess.Close()
	}
	return r
}

func mustChecksum(s memfd.Spec) uint32 {
	c, err := s.Content()
	if err != nil {
		return 0
	}
	return memfd.Checksum(c)
}

// Check compares a retrieved memfd with the spec kho-sim wrote it from:
// size (fstat), position (lseek), seals (F_GET_SEALS, as memfd_luo_retrieve
// re-adds them: memfd.RestoredSeals) and every byte.
func Check(f *os.File, spec memfd.Spec) error {
	want, err := spec.Content()
	if err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("fstat: %w", err)
	}
	var errs []error
	if uint64(st.Size) != spec.Size {
		errs = append(errs, fmt.Errorf("size %d, kho-sim wrote %d", st.Size, spec.Size))
	}
	pos, err := unix.Seek(int(f.Fd()), 0, io.SeekCurrent)
	if err != nil {
		return fmt.Errorf("lseek: %w", err)
	}
	if uint64(pos) != spec.Pos {
		errs = append(errs, fmt.Errorf("position %d, kho-sim wrote %d", pos, spec.Pos))
	}
	seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	if err != nil {
		return fmt.Errorf("F_GET_SEALS: %w", err)
	}
	if wantSeals := memfd.RestoredSeals(spec.Seals); uint32(seals) != wantSeals {
		errs = append(errs, fmt.Errorf("seals %#x, want %#x (kho-sim wrote %#x)", seals, wantSeals, spec.Seals))
	}
	got := make([]byte, len(want))
	n, err := f.ReadAt(got, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read: %w", err)
	}
	if !bytes.Equal(got[:n], want) {
		errs = append(errs, fmt.Errorf("content differs from kho-sim's: %d bytes read of %d, first difference at byte %d", n, len(want), firstDiff(got[:n], want)))
	}
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return errors.New(strings.Join(msgs, "; "))
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

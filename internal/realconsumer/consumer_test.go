package realconsumer

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/internal/scenario"
	"github.com/kho-sim/kho-sim/internal/sim"
	"github.com/kho-sim/kho-sim/pkg/memfd"
)

// restored makes the memfd a real kernel's memfd_luo_retrieve would hand
// back for spec, then lets edit damage it.
func restored(t *testing.T, spec memfd.Spec, edit func(fd int)) *os.File {
	t.Helper()
	fd, err := unix.MemfdCreate("restored", unix.MFD_ALLOW_SEALING)
	if err != nil {
		t.Skipf("memfd_create: %v", err)
	}
	f := os.NewFile(uintptr(fd), "restored")
	content, err := spec.Content()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(content); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(int64(spec.Size)); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(fd)
	}
	if _, err := f.Seek(int64(spec.Pos), io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, int(spec.Seals)); err != nil {
		t.Fatal(err)
	}
	return f
}

type fakeSessions struct {
	t     *testing.T
	files map[string]map[uint64]memfd.Spec
	edit  map[string]func(fd int) // by SESSION/TOKEN
	done  []string
}

func (s *fakeSessions) Retrieve(name string) (Session, error) {
	if _, ok := s.files[name]; !ok {
		return nil, unix.ENOENT
	}
	return &fakeSession{s: s, name: name}, nil
}

type fakeSession struct {
	s    *fakeSessions
	name string
}

func (f *fakeSession) RetrieveFD(token uint64) (*os.File, error) {
	spec, ok := f.s.files[f.name][token]
	if !ok {
		return nil, unix.ENOENT
	}
	return restored(f.s.t, spec, f.s.edit[fmt.Sprintf("%s/%d", f.name, token)]), nil
}

func (f *fakeSession) Finish() error { f.s.done = append(f.s.done, f.name); return nil }
func (f *fakeSession) Close() error  { return nil }

func realConsumerFiles(t *testing.T) []sim.MemfdFile {
	t.Helper()
	sc, err := scenario.Lookup("real-consumer")
	if err != nil {
		t.Fatal(err)
	}
	files, err := sim.MemfdFiles(sc, 1)
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestRun(t *testing.T) {
	files := realConsumerFiles(t)
	tests := []struct {
		name     string
		drop     string // a session the kernel did not hand back
		edit     map[string]func(fd int)
		want     []string // in the problems
		finished int
	}{
		{name: "as written", finished: 2},
		{name: "byte changed", edit: map[string]func(int){"kho-sim-a/1": func(fd int) { unix.Pwrite(fd, []byte{0}, 4100) }},
			want: []string{"kho-sim-a/1: content differs from kho-sim's: 20603 bytes read of 20603, first difference at byte 4100"}, finished: 2},
		{name: "seal added", edit: map[string]func(int){"kho-sim-a/1": func(fd int) { unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_GROW) }},
			want: []string{"kho-sim-a/1: seals 0x4, want 0x0 (kho-sim wrote 0x0)"}, finished: 2},
		{name: "size", edit: map[string]func(int){"kho-sim-a/2": func(fd int) { unix.Ftruncate(fd, 5) }},
			want: []string{"kho-sim-a/2: size 5, kho-sim wrote 40959; content differs from kho-sim's: 5 bytes read of 40959, first difference at byte 5"}, finished: 2},
		{name: "session missing", drop: "kho-sim-b", want: []string{`retrieve session "kho-sim-b": no such file or directory`}, finished: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &fakeSessions{t: t, files: map[string]map[uint64]memfd.Spec{}, edit: tt.edit}
			for _, f := range files {
				if f.Session == tt.drop {
					continue
				}
				if s.files[f.Session] == nil {
					s.files[f.Session] = map[uint64]memfd.Spec{}
				}
				s.files[f.Session][f.Token] = f.Spec
			}
			var out bytes.Buffer
			r := Run(s, files, &out)
			if len(r.Problems) != len(tt.want) {
				t.Fatalf("problems %q, want %q\n%s", r.Problems, tt.want, out.String())
			}
			for i, w := range tt.want {
				if r.Problems[i] != w {
					t.Errorf("problem %d: %q, want %q", i, r.Problems[i], w)
				}
			}
			if len(s.done) != tt.finished {
				t.Errorf("finished %v, want %d sessions", s.done, tt.finished)
			}
			if r.OK() != (len(tt.want) == 0) || !strings.HasPrefix(out.String(), Prefix) {
				t.Errorf("OK %v, output:\n%s", r.OK(), out.String())
			}
		})
	}
}

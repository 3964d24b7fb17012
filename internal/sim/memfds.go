package sim

import (
	"bytes"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/internal/payload"
	"github.com/kho-sim/kho-sim/internal/scenario"
	"github.com/kho-sim/kho-sim/pkg/memfd"
)

// MemfdFile is one memfd a scenario's boot preserves: where it goes and
// what it holds.
type MemfdFile struct {
	Session string
	Token   uint64
	Spec    memfd.Spec
}

// Name is the file's SESSION/TOKEN name, which seeds its content.
func (f MemfdFile) Name() string { return fileName(f.Session, f.Token) }

func fileName(session string, token uint64) string { return fmt.Sprintf("%s/%d", session, token) }

// MemfdSpec is the memfd the given boot preserves for a memfd handler's
// file d of session: the shape d names, seeded from the file's name and
// the boot as every payload is. It is the one definition both kho-sim's
// handler and a consumer in the next kernel (which recomputes the content
// to compare it byte by byte) use.
func MemfdSpec(session string, d scenario.File, boot int) (memfd.Spec, error) {
	s, ok := memfd.ExampleSpec(d.Shape, payload.Seed(fileName(session, d.Token), boot))
	if !ok {
		return memfd.Spec{}, fmt.Errorf("file %s: unknown memfd shape %q: %w", fileName(session, d.Token), d.Shape, unix.EINVAL)
	}
	return s, nil
}

// MemfdFiles lists the memfds a boot that preserves every declared file
// of sc hands over, by session and token.
func MemfdFiles(sc *scenario.Scenario, boot int) ([]MemfdFile, error) {
	memfdHandler := map[string]bool{}
	for _, h := range sc.Handlers {
		memfdHandler[h.Name] = h.Memfd
	}
	var out []MemfdFile
	for _, s := range sc.Sessions {
		for _, d := range s.Files {
			if !memfdHandler[d.Handler] {
				continue
			}
			spec, err := MemfdSpec(s.Name, d, boot)
			if err != nil {
				return nil, err
			}
			out = append(out, MemfdFile{Session: s.Name, Token: d.Token, Spec: spec})
		}
	}
	return out, nil
}

// writeMemfd lays out spec as memfd-v2 state in freshly preserved memory.
func (p *payloads) writeMemfd(spec memfd.Spec) (*memfd.Written, error) {
	return memfd.Write(p.out, spec)
}

// freeMemfd unpreserves and frees every block of a written memfd.
func (p *payloads) freeMemfd(w *memfd.Written, name string) {
	for _, b := range w.Blocks {
		p.free(b.PA, "memfd", name+" "+b.What)
	}
}

// readMemfd reads the memfd-v2 state at pa strictly and compares it, byte
// by byte, with spec and kho-sim's record of its checksum.
func (p *payloads) readMemfd(pa uint64, spec memfd.Spec, crc uint32) (*memfd.File, error) {
	mem := p.in
	f, err := memfd.Read(mem, pa, memfd.Options{Preserved: mem.BlockAt})
	if err != nil {
		return nil, err
	}
	if f.Size() != spec.Size || f.Seals() != spec.Seals || f.Ser.Pos != spec.Pos {
		return f, fmt.Errorf("memfd at %#x: size %d, pos %d, seals %#x; kho-sim wrote size %d, pos %d, seals %#x",
			pa, f.Size(), f.Ser.Pos, f.Seals(), spec.Size, spec.Pos, spec.Seals)
	}
	if f.Checksum != crc {
		return f, fmt.Errorf("memfd at %#x: checksum %#08x, kho-sim wrote %#08x", pa, f.Checksum, crc)
	}
	got, err := f.Content(mem)
	if err != nil {
		return f, err
	}
	want, err := spec.Content()
	if err != nil {
		return f, err
	}
	if !bytes.Equal(got, want) {
		return f, fmt.Errorf("memfd at %#x: content differs from kho-sim's from byte %d", pa, firstDiff(got, want))
	}
	return f, nil
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

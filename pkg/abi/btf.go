package abi

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/cilium/ebpf/btf"
)

// ErrNotBTF reports a file that holds neither raw BTF nor an ELF .BTF
// section.
var ErrNotBTF = errors.New("no BTF")

// maxRawBTF bounds a raw BTF blob read whole into memory; a vmlinux's BTF
// is a few MiB.
const maxRawBTF = 256 << 20

// LoadBTF reads the BTF in the file at path: raw BTF, as in
// /sys/kernel/btf/vmlinux, or the .BTF section of an ELF file, such as a
// vmlinux (stripped or not) or an object that pahole -J encoded. Errors
// wrap ErrNotBTF when the contents are not BTF.
func LoadBTF(path string) (*btf.Spec, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err // *fs.PathError names the file
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w: %s, not a regular file", path, ErrNotBTF, fileKind(info.Mode()))
	}
	spec, err := LoadBTFFromReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return spec, nil
}

// fileKind names a non-regular file's type.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "a special file"
}

// LoadBTFFromReader is LoadBTF on the bytes of r. An ELF file's .BTF
// section is read with debug/elf rather than by btf.LoadSpecFromReader,
// which insists on a symbol table that a distribution's stripped vmlinux
// lacks.
func LoadBTFFromReader(r io.ReaderAt) (*btf.Spec, error) {
	var magic [len(elf.ELFMAG)]byte
	n, err := r.ReadAt(magic[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read: %w", err)
	}
	if n < len(magic) {
		return nil, fmt.Errorf("%w: only %d bytes", ErrNotBTF, n)
	}
	var raw []byte
	if string(magic[:]) == elf.ELFMAG {
		raw, err = elfBTF(r)
	} else {
		raw, err = io.ReadAll(io.NewSectionReader(r, 0, maxRawBTF+1))
		if err == nil && len(raw) > maxRawBTF {
			err = fmt.Errorf("%w: more than %d bytes, too large for raw BTF", ErrNotBTF, maxRawBTF)
		}
	}
	if err != nil {
		return nil, err
	}
	spec, err := btf.LoadSpecFromReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotBTF, err)
	}
	return spec, nil
}

// elfBTF returns the contents of an ELF file's .BTF section.
func elfBTF(r io.ReaderAt) ([]byte, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("%w: ELF: %v", ErrNotBTF, err)
	}
	sec := f.Section(".BTF")
	if sec == nil || sec.Type == elf.SHT_NOBITS {
		return nil, fmt.Errorf("%w: ELF file without a .BTF section", ErrNotBTF)
	}
	if sec.Size > maxRawBTF {
		return nil, fmt.Errorf("%w: ELF .BTF section of %d bytes, more than %d", ErrNotBTF, sec.Size, maxRawBTF)
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("%w: ELF .BTF section unreadable: %v", ErrNotBTF, err)
	}
	return data, nil
}

// Verdict is the outcome of comparing one Struct with a kernel's BTF.
type Verdict uint8

// Verdicts.
const (
	Match    Verdict = iota // every field at the same offset with the same size
	Mismatch                // see the Differences
	Absent                  // the BTF does not define the struct
)

func (v Verdict) String() string {
	switch v {
	case Match:
		return "match"
	case Mismatch:
		return "mismatch"
	case Absent:
		return "absent"
	}
	return fmt.Sprintf("Verdict(%d)", uint8(v))
}

// Slot is where one side puts a field, or the size of the whole struct.
type Slot struct {
	Present bool
	Offset  int // bytes; for the whole struct, 0
	Size    int // bytes
	// Problem says what else is wrong with the kernel's member: a bitfield,
	// an offset that is not a whole byte, a type without a size.
	Problem string
}

func (s Slot) String() string {
	switch {
	case !s.Present:
		return "has no such field"
	case s.Problem != "":
		return fmt.Sprintf("offset %d size %d (%s)", s.Offset, s.Size, s.Problem)
	}
	return fmt.Sprintf("offset %d size %d", s.Offset, s.Size)
}

// Difference is one disagreement between kho-sim's layout (Want) and the
// kernel's (Got).
type Difference struct {
	Field     string // "" for the size of the struct itself
	Want, Got Slot
}

func (d Difference) String() string {
	if d.Field == "" {
		return fmt.Sprintf("size: kho-sim %d bytes, kernel %d bytes", d.Want.Size, d.Got.Size)
	}
	return fmt.Sprintf("field %s: kho-sim %s, kernel %s", d.Field, d.Want, d.Got)
}

// StructResult is the comparison of one Struct with the kernel's BTF.
type StructResult struct {
	Struct      Struct
	Verdict     Verdict
	Differences []Difference // Mismatch only
	Note        string       // why Absent, or how many definitions the BTF holds
}

// CheckBTF compares every struct of Layouts with the struct of the same name
// in spec: member names, byte offsets and sizes, and the struct's size. A
// struct the BTF only forward-declares is Absent. When the BTF defines one
// name several times (several compilation units), all must match.
func CheckBTF(spec *btf.Spec) ([]StructResult, error) {
	layouts := Layouts()
	results := make([]StructResult, 0, len(layouts))
	for _, want := range layouts {
		r, err := checkStruct(spec, want, func(got *btf.Struct) []Difference { return CompareStruct(want, got) })
		if err != nil {
			return nil, fmt.Errorf("struct %s: %w", want.Name, err)
		}
		results = append(results, r)
	}
	return results, nil
}

// checkStruct finds want's definitions in spec and compares each with
// compare: all must match.
func checkStruct(spec *btf.Spec, want Struct, compare func(*btf.Struct) []Difference) (StructResult, error) {
	r := StructResult{Struct: want, Verdict: Absent, Note: "absent from BTF"}
	types, err := spec.AnyTypesByName(want.Name)
	if errors.Is(err, btf.ErrNotFound) {
		return r, nil
	}
	if err != nil {
		return r, err
	}
	var defs []*btf.Struct
	for _, t := range types {
		switch t := t.(type) {
		case *btf.Struct:
			defs = append(defs, t)
		case *btf.Fwd:
			if t.Kind == btf.FwdStruct {
				r.Note = "only forward-declared in BTF"
			}
		}
	}
	if len(defs) == 0 {
		return r, nil
	}
	r.Verdict, r.Note = Match, ""
	if len(defs) > 1 {
		r.Note = fmt.Sprintf("%d definitions in BTF", len(defs))
	}
	for _, def := range defs {
		if diffs := compare(def); len(diffs) > 0 {
			r.Verdict, r.Differences = Mismatch, diffs
			break
		}
	}
	return r, nil
}

// CompareStruct lists how got, a struct from BTF, differs from want: the
// struct's size, then want's fields in order, then the members of got that
// want lacks.
func CompareStruct(want Struct, got *btf.Struct) []Difference {
	var diffs []Difference
	if int(got.Size) != want.Size {
		diffs = append(diffs, Difference{Want: Slot{Present: true, Size: want.Size}, Got: Slot{Present: true, Size: int(got.Size)}})
	}
	members := make(map[string]btf.Member, len(got.Members))
	for _, m := range got.Members {
		if _, dup := members[m.Name]; !dup {
			members[m.Name] = m
		}
	}
	for _, f := range want.Fields {
		w := Slot{Present: true, Offset: f.Offset, Size: f.Size}
		m, ok := members[f.Name]
		if !ok {
			diffs = append(diffs, Difference{Field: f.Name, Want: w})
			continue
		}
		if g := slotOf(m); g != w {
			diffs = append(diffs, Difference{Field: f.Name, Want: w, Got: g})
		}
	}
	for _, m := range got.Members {
		if _, ok := want.Field(m.Name); !ok {
			name := m.Name
			if name == "" {
				name = "(anonymous)"
			}
			diffs = append(diffs, Difference{Field: name, Got: slotOf(m)})
		}
	}
	return diffs
}

// slotOf describes where a BTF member lies.
func slotOf(m btf.Member) Slot {
	s := Slot{Present: true, Offset: int(m.Offset.Bytes())}
	var problems []string
	if m.BitfieldSize != 0 {
		problems = append(problems, fmt.Sprintf("bitfield of %d bits at bit %d", m.BitfieldSize, m.Offset))
	} else if m.Offset%8 != 0 {
		problems = append(problems, fmt.Sprintf("at bit %d, not a whole byte", m.Offset))
	}
	size, err := btf.Sizeof(m.Type)
	if err != nil {
		problems = append(problems, fmt.Sprintf("type %s without a size", m.Type))
	}
	s.Size = size
	if len(problems) > 0 {
		s.Problem = strings.Join(problems, ", ")
	}
	return s
}

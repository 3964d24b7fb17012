package kho

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
	"strings"

	"github.com/kho-sim/kho-sim/internal/readfile"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// The console dump format. A guest prints one line per page and one line
// for the setup_data, each line on its own; anything else on the console
// (kernel messages, other output) is ignored by ParseDump:
//
//	KHOSETUP <fdt_addr> <fdt_size> <scratch_addr> <scratch_size>
//	KHODUMP <pa> <crc32> <bytes>
//
// Numbers are lowercase hex without 0x. <crc32> is the IEEE CRC-32 of the
// whole 4096-byte page, so a line garbled on the serial console is caught;
// <bytes> is the page in hex with its trailing zero bytes left out (a lone
// "-" for an all-zero page), which keeps the mostly empty radix bitmaps short.
const (
	setupTag = "KHOSETUP"
	dumpTag  = "KHODUMP"
)

// maxDumpLine bounds a console line ParseDump accepts; a dump line is
// about 8.2 KB.
const maxDumpLine = 1 << 20

// ErrDump is wrapped by ParseDump's errors.
var ErrDump = errors.New("kho: malformed dump")

// FormatDumpLine returns the dump line of page (at most physmem.PageSize bytes,
// zero-padded) at pa, without a newline.
func FormatDumpLine(pa uint64, page []byte) string {
	p := make([]byte, physmem.PageSize)
	copy(p, page)
	body := hex.EncodeToString(bytes.TrimRight(p, "\x00"))
	if body == "" {
		body = "-"
	}
	return fmt.Sprintf("%s %x %08x %s", dumpTag, pa, crc32.ChecksumIEEE(p), body)
}

// FormatSetupLine returns the dump line of the setup_data, without a newline.
func FormatSetupLine(s Setup) string {
	return fmt.Sprintf("%s %x %x %x %x", setupTag, s.FDTAddr, s.FDTSize, s.ScratchAddr, s.ScratchSize)
}

// Dump is a parsed console dump.
type Dump struct {
	Setup *Setup // nil if the dump has no KHOSETUP line
	Pages *PageStore
}

// ReadDumpFile parses the console log at path with ParseDump; its errors
// name the file.
func ReadDumpFile(path string) (*Dump, error) { return readfile.Parse(path, ParseDump) }

// ParseDump reads a console log and collects its KHOSETUP and KHODUMP
// lines, which may follow other text on their line (a console prefix).
// A malformed line, a bad checksum or the same page twice with different
// bytes is an error.
func ParseDump(r io.Reader) (*Dump, error) {
	d := &Dump{Pages: NewPageStore()}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), maxDumpLine)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		if i := strings.Index(line, dumpTag+" "); i >= 0 {
			if err := d.parsePage(line[i+len(dumpTag)+1:]); err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
		} else if i := strings.Index(line, setupTag+" "); i >= 0 {
			if err := d.parseSetup(line[i+len(setupTag)+1:]); err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
		}
	}
	if err := sc.Err(); errors.Is(err, bufio.ErrTooLong) {
		return nil, fmt.Errorf("%w: a line longer than %d bytes", ErrDump, maxDumpLine)
	} else if err != nil {
		return nil, fmt.Errorf("kho: read dump: %w", err)
	}
	return d, nil
}

func (d *Dump) parsePage(rest string) error {
	f := strings.Fields(rest)
	if len(f) != 3 {
		return fmt.Errorf("%w: %s line has %d fields, want 3", ErrDump, dumpTag, len(f))
	}
	pa, err := strconv.ParseUint(f[0], 16, 64)
	if err != nil {
		return fmt.Errorf("%w: address %q", ErrDump, f[0])
	}
	sum, err := strconv.ParseUint(f[1], 16, 32)
	if err != nil {
		return fmt.Errorf("%w: checksum %q", ErrDump, f[1])
	}
	page := make([]byte, physmem.PageSize)
	if f[2] != "-" {
		if len(f[2]) > 2*physmem.PageSize {
			return fmt.Errorf("%w: page %#x: %d hex digits, more than a page", ErrDump, pa, len(f[2]))
		}
		if _, err := hex.Decode(page, []byte(f[2])); err != nil {
			return fmt.Errorf("%w: page %#x: %v", ErrDump, pa, err)
		}
	}
	if got := crc32.ChecksumIEEE(page); got != uint32(sum) {
		return fmt.Errorf("%w: page %#x: checksum %08x, line says %08x", ErrDump, pa, got, sum)
	}
	if old := d.Pages.Page(pa); old != nil && !bytes.Equal(old, page) {
		return fmt.Errorf("%w: page %#x dumped twice with different bytes", ErrDump, pa)
	}
	if err := d.Pages.Add(pa, page); err != nil {
		return fmt.Errorf("%w: %v", ErrDump, err)
	}
	return nil
}

func (d *Dump) parseSetup(rest string) error {
	f := strings.Fields(rest)
	if len(f) != 4 {
		return fmt.Errorf("%w: %s line has %d fields, want 4", ErrDump, setupTag, len(f))
	}
	var v [4]uint64
	for i := range v {
		x, err := strconv.ParseUint(f[i], 16, 64)
		if err != nil {
			return fmt.Errorf("%w: %s field %q", ErrDump, setupTag, f[i])
		}
		v[i] = x
	}
	s := Setup{v[0], v[1], v[2], v[3]}
	if d.Setup != nil && *d.Setup != s {
		return fmt.Errorf("%w: two different %s lines", ErrDump, setupTag)
	}
	d.Setup = &s
	return nil
}

// SetupKHO is SETUP_KEXEC_KHO, the x86 setup_data type that carries Setup.
const SetupKHO = 10

// SetupSize is sizeof(struct kho_data).
const SetupSize = 32

// Setup is 7.2's struct kho_data, the setup_data payload (type SetupKHO)
// through which kexec_file_load tells the next x86 kernel where the
// handover is.
type Setup struct {
	FDTAddr, FDTSize         uint64 // the root FDT (FDTSize is PAGE_SIZE)
	ScratchAddr, ScratchSize uint64 // the array of struct kho_scratch {addr, size}
}

// ParseSetup decodes the 32-byte kho_data payload.
func ParseSetup(b []byte) (Setup, error) {
	if len(b) != SetupSize {
		return Setup{}, fmt.Errorf("kho: kho_data is %d bytes, want %d: %w", len(b), SetupSize, ErrBadSize)
	}
	le := binary.LittleEndian
	return Setup{le.Uint64(b), le.Uint64(b[8:]), le.Uint64(b[16:]), le.Uint64(b[24:])}, nil
}

// Bytes encodes s as the kernel lays out struct kho_data.
func (s Setup) Bytes() []byte {
	b := make([]byte, SetupSize)
	le := binary.LittleEndian
	le.PutUint64(b, s.FDTAddr)
	le.PutUint64(b[8:], s.FDTSize)
	le.PutUint64(b[16:], s.ScratchAddr)
	le.PutUint64(b[24:], s.ScratchSize)
	return b
}

package kho

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/kho-sim/kho-sim/pkg/physmem"
)

func TestDumpRoundTrip(t *testing.T) {
	pages := map[uint64][]byte{
		0x1000:  {1, 2, 3},
		0x2000:  nil, // all zero
		0x3000:  bytes.Repeat([]byte{0xff}, physmem.PageSize),
		0xf0000: append(make([]byte, 100), 7),
	}
	setup := Setup{FDTAddr: 0x1000, FDTSize: physmem.PageSize, ScratchAddr: 0x3000, ScratchSize: 48}
	var log strings.Builder
	log.WriteString("Linux version 7.2.13\n")
	log.WriteString("   1.234 " + FormatSetupLine(setup) + "\r\n") // a console prefix, CRLF
	for pa, p := range pages {
		log.WriteString(FormatDumpLine(pa, p) + "\n")
		log.WriteString("random kernel message\n")
	}
	log.WriteString(FormatDumpLine(0x1000, []byte{1, 2, 3}) + "\n") // the same page again
	d, err := ParseDump(strings.NewReader(log.String()))
	if err != nil {
		t.Fatal(err)
	}
	if d.Setup == nil || *d.Setup != setup {
		t.Errorf("setup %+v, want %+v", d.Setup, setup)
	}
	if len(d.Pages.Addresses()) != len(pages) {
		t.Errorf("pages %#x", d.Pages.Addresses())
	}
	for pa, p := range pages {
		want := make([]byte, physmem.PageSize)
		copy(want, p)
		if !bytes.Equal(d.Pages.Page(pa), want) {
			t.Errorf("page %#x differs", pa)
		}
	}
	if line := FormatDumpLine(0x2000, nil); !strings.HasSuffix(line, " -") {
		t.Errorf("zero page line %q, want a lone -", line)
	}
}

func TestParseDumpErrors(t *testing.T) {
	good := FormatDumpLine(0x1000, []byte{1, 2, 3})
	f := strings.Fields(good)
	tests := []struct {
		name, log string
	}{
		{"bad checksum", strings.Join([]string{f[0], f[1], "00000000", f[3]}, " ")},
		{"garbled byte", strings.Replace(good, "010203", "010303", 1)},
		{"odd hex", good + "0"},
		{"not hex", strings.Replace(good, "010203", "01020z", 1)},
		{"missing field", strings.Join(f[:3], " ")},
		{"bad address", strings.Join([]string{f[0], "xyz", f[2], f[3]}, " ")},
		{"misaligned address", strings.Join([]string{f[0], "1001", f[2], f[3]}, " ")},
		{"more than a page", FormatDumpLine(0x1000, nil)[:len(f[0])+len(f[1])+len(f[2])+3] + strings.Repeat("00", physmem.PageSize+1)},
		{"conflicting pages", good + "\n" + FormatDumpLine(0x1000, []byte{9})},
		{"conflicting setups", "KHOSETUP 1 2 3 4\nKHOSETUP 1 2 3 5"},
		{"short setup", "KHOSETUP 1 2 3"},
		{"bad setup", "KHOSETUP 1 2 3 q"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := ParseDump(strings.NewReader(tt.log))
			if !errors.Is(err, ErrDump) {
				t.Fatalf("ParseDump: %v, want %v", err, ErrDump)
			}
			if d != nil {
				t.Error("dump returned with the error")
			}
		})
	}
}

func TestSetup(t *testing.T) {
	s := Setup{FDTAddr: 0x1ec000, FDTSize: physmem.PageSize, ScratchAddr: 0x3e7f0000, ScratchSize: 48}
	b := s.Bytes()
	if len(b) != SetupSize || b[0] != 0x00 || b[1] != 0xc0 || b[2] != 0x1e {
		t.Errorf("Bytes() = %x", b)
	}
	if got, err := ParseSetup(b); err != nil || got != s {
		t.Errorf("ParseSetup = %+v, %v", got, err)
	}
	for _, n := range []int{0, 31, 33} {
		if _, err := ParseSetup(make([]byte, n)); !errors.Is(err, ErrBadSize) {
			t.Errorf("ParseSetup(%d bytes): %v, want %v", n, err, ErrBadSize)
		}
	}
}

// FuzzParseDump feeds arbitrary console text; what parses must format back
// to lines that parse to the same pages.
func FuzzParseDump(f *testing.F) {
	f.Add(FormatDumpLine(0x1000, []byte{1, 2, 3}) + "\nKHOSETUP 1 2 3 4\n")
	f.Add("KHODUMP 0 00000000 -\n")
	f.Fuzz(func(t *testing.T, log string) {
		d, err := ParseDump(strings.NewReader(log))
		if err != nil {
			return
		}
		var again strings.Builder
		for _, pa := range d.Pages.Addresses() {
			again.WriteString(FormatDumpLine(pa, d.Pages.Page(pa)) + "\n")
		}
		d2, err := ParseDump(strings.NewReader(again.String()))
		if err != nil {
			t.Fatalf("reformatted dump: %v", err)
		}
		for _, pa := range d.Pages.Addresses() {
			if string(d2.Pages.Page(pa)) != string(d.Pages.Page(pa)) {
				t.Fatalf("page %#x changed", pa)
			}
		}
	})
}

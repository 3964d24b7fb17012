package physmem

import (
	"reflect"
	"strings"
	"testing"
)

// A list as Linux 6.1 prints it in a QEMU guest with memmap=16M$0x10000000,
// the region mapped twice: once with O_SYNC and once without.
const patList = `PAT memtype list:
PAT: [mem 0x0000000010000000-0x0000000011000000] write-back
PAT: [mem 0x0000000010000000-0x0000000011000000] uncached-minus
PAT: [mem 0x00000000febd0000-0x00000000febd1000] uncached-minus
PAT: [mem 0x0000000000000000-0x0000000000001000] write-back
PAT: [mem 0x0000000011000000-0x0000000011001000] write-combining
garbage line
PAT: [mem 0x20-0x10] write-back
`

func TestParsePATMemtypes(t *testing.T) {
	rg := Range{Start: 0x10000000, Size: 16 << 20}
	got, err := ParsePATMemtypes(strings.NewReader(patList), rg)
	if err != nil {
		t.Fatal(err)
	}
	want := []Memtype{{rg, "write-back"}, {rg, "uncached-minus"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if got, _ := ParsePATMemtypes(strings.NewReader(patList), Range{Start: 0x20000000, Size: 4096}); len(got) != 0 {
		t.Errorf("entries %+v for a range nothing maps", got)
	}
}

// FuzzParsePATMemtypes: kernel text of any shape never panics, and every
// entry returned overlaps the range asked for.
func FuzzParsePATMemtypes(f *testing.F) {
	f.Add(patList)
	f.Fuzz(func(t *testing.T, s string) {
		rg := Range{Start: 0x10000000, Size: 16 << 20}
		got, _ := ParsePATMemtypes(strings.NewReader(s), rg)
		for _, m := range got {
			if m.Range.Size == 0 || !m.Range.Overlaps(rg) {
				t.Fatalf("entry %+v does not overlap %v", m, rg)
			}
		}
	})
}

package physmem

import "testing"

func TestMemmapFromCmdline(t *testing.T) {
	want := Range{0x10000000, 16 << 20}
	tests := []struct {
		name    string
		cmdline string
		want    Range
		found   bool
		wantErr bool
	}{
		{"suffix", "console=ttyS0 memmap=16M$0x10000000 panic=-1", want, true, false},
		{"hex size", "memmap=0x1000000$0x10000000", want, true, false},
		{"suffixed addr", "memmap=16M$256M", want, true, false},
		{"escaped", `console=ttyS0 memmap=16M\$0x10000000`, want, true, false},
		{"quoted arg", `"memmap=16M$0x10000000" quiet`, want, true, false},
		{"quoted value", `memmap="16M$0x10000000" quiet`, want, true, false},
		{"a quote inside the value stays, as in next_arg", `memmap=16M$0x1"0000000"`, Range{}, false, true},
		{"quoted with space", `foo="a b memmap=1M$0x1" memmap=16M$0x10000000`, want, true, false},
		{"proc newline", "ro memmap=16M$0x10000000\n", want, true, false},
		{"tabs", "ro\tmemmap=16M$0x10000000\tquiet", want, true, false},
		{"first of several", "memmap=16M$0x10000000 memmap=4K$0x20000000", want, true, false},
		{"other kinds first", "memmap=exactmap memmap=640K@0 memmap=1M#0x2000000 memmap=4G!4G memmap=16M$0x10000000", want, true, false},
		{"comma list", "memmap=1M@0x0,16M$0x10000000,4K$0x20000000", want, true, false},
		{"limit only", "memmap=512M", Range{}, false, false},
		{"none", "console=ttyS0 quiet", Range{}, false, false},
		{"empty", "", Range{}, false, false},
		{"after --", "quiet -- memmap=16M$0x10000000", Range{}, false, false},
		{"prefix name", "xmemmap=16M$0x10000000 nomemmap=1", Range{}, false, false},
		{"bad size", "memmap=16Q$0x10000000", Range{}, false, true},
		{"bad addr", "memmap=16M$zz", Range{}, false, true},
		{"empty addr", "memmap=16M$", Range{}, false, true},
		{"zero size", "memmap=0$0x10000000", Range{}, false, true},
		{"wraps", "memmap=8K$0xfffffffffffff000", Range{}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, found, err := MemmapFromCmdline(tt.cmdline)
			if (err != nil) != tt.wantErr || found != tt.found || got != tt.want {
				t.Errorf("MemmapFromCmdline(%q) = %v, %v, %v; want %v, %v, error %v",
					tt.cmdline, got, found, err, tt.want, tt.found, tt.wantErr)
			}
		})
	}
}

func FuzzMemmapFromCmdline(f *testing.F) {
	f.Add("console=ttyS0 memmap=16M$0x10000000")
	f.Add(`"memmap=1M@0,16M\$0x10000000" -- x`)
	f.Fuzz(func(t *testing.T, cmdline string) {
		r, found, err := MemmapFromCmdline(cmdline)
		if err != nil && (found || r != Range{}) {
			t.Fatalf("error %v with result %v, %v", err, r, found)
		}
		if found && !r.valid() {
			t.Fatalf("found invalid range %v", r)
		}
	})
}

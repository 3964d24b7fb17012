package kexec

import (
	"slices"
	"strings"
	"testing"
)

func TestRewriteCmdline(t *testing.T) {
	tests := []struct {
		name    string
		current string
		set     map[string]string
		drop    []string
		want    string
	}{
		{
			name:    "append to a plain line, memmap kept verbatim",
			current: "console=ttyS0 memmap=16M$0x10000000 quiet",
			set:     map[string]string{"kho_sim.fdt": "0x10000000"},
			want:    "console=ttyS0 memmap=16M$0x10000000 quiet kho_sim.fdt=0x10000000",
		},
		{
			name:    "existing key replaced in place, later duplicates removed",
			current: "kho_sim.fdt=0x1 console=ttyS0 kho_sim.fdt=0x2 panic=-1",
			set:     map[string]string{"kho_sim.fdt": "0x10002000"},
			want:    "kho_sim.fdt=0x10002000 console=ttyS0 panic=-1",
		},
		{
			name:    "dash and underscore are the same key",
			current: "kho-sim.fdt=0x1 console=ttyS0",
			set:     map[string]string{"kho_sim.fdt": "0x2"},
			want:    "kho_sim.fdt=0x2 console=ttyS0",
		},
		{
			name:    "new keys are sorted and go before --",
			current: "console=ttyS0 -- init-arg1 kho_sim.fdt=0xdead",
			set:     map[string]string{"kho_sim.hop": "2", "kho_sim.fdt": "0x10000000"},
			want:    "console=ttyS0 kho_sim.fdt=0x10000000 kho_sim.hop=2 -- init-arg1 kho_sim.fdt=0xdead",
		},
		{
			name:    "drop removes every instance but only before --",
			current: "BOOT_IMAGE=/vmlinuz initrd=/x console=ttyS0 initrd=/y -- initrd=/z",
			drop:    []string{"initrd", "BOOT_IMAGE"},
			want:    "console=ttyS0 -- initrd=/z",
		},
		{
			name:    "quoted values with spaces survive, keyed correctly",
			current: `dyndbg="file foo.c +p" "kho_sim.note=a b" console=ttyS0`,
			set:     map[string]string{"kho_sim.note": "c d"},
			want:    `dyndbg="file foo.c +p" kho_sim.note="c d" console=ttyS0`,
		},
		{
			name:    "empty value gives a bare flag; white space collapses",
			current: "  console=ttyS0\t\tmemmap=16M$0x10000000\n",
			set:     map[string]string{"kho_sim.debug": ""},
			want:    "console=ttyS0 memmap=16M$0x10000000 kho_sim.debug",
		},
		{
			name:    "set wins over drop of the same key",
			current: "a=1 b=2",
			set:     map[string]string{"a": "3"},
			drop:    []string{"a", "b"},
			want:    "a=3",
		},
		{
			name:    "an unterminated quote is closed before appending",
			current: `console=ttyS0 x="a b`,
			set:     map[string]string{"y": "1"},
			want:    `console=ttyS0 x="a b" y=1`,
		},
		{
			name:    "empty line",
			current: "",
			set:     map[string]string{"x": "1"},
			want:    "x=1",
		},
		{
			name:    "nothing to do keeps repeated parameters",
			current: "memmap=16M$0x10000000 memmap=4K$0x20000000 --",
			want:    "memmap=16M$0x10000000 memmap=4K$0x20000000 --",
		},
		{
			name:    "a key that is a prefix of another is not matched",
			current: "kho_sim.fdtx=1 kho_sim.fdt",
			set:     map[string]string{"kho_sim.fdt": "2"},
			want:    "kho_sim.fdtx=1 kho_sim.fdt=2",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 3 { // map order must not show
				if got := RewriteCmdline(tt.current, tt.set, tt.drop); got != tt.want {
					t.Fatalf("RewriteCmdline(%q, %v, %v)\n got %q\nwant %q", tt.current, tt.set, tt.drop, got, tt.want)
				}
			}
		})
	}
}

func TestCmdlineWords(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{" a  b ", []string{"a", "b"}},
		{`x="1 2" "y=3 4"z w`, []string{`x="1 2"`, `"y=3 4"z`, "w"}},
		{`open="unterminated quote`, []string{`open="unterminated quote"`}},
		{`a "b=c -- d`, []string{"a", `"b=c -- d"`}},
	}
	for _, tt := range tests {
		if got := cmdlineWords(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("cmdlineWords(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzRewriteCmdline(f *testing.F) {
	f.Add("console=ttyS0 memmap=16M$0x10000000 kho_sim.fdt=0x1 -- a b", "kho_sim.fdt", "0x10000000", "console")
	f.Add(`x="a b" "y=c d" --`, "y", "e f", "x")
	f.Fuzz(func(t *testing.T, current, key, value, drop string) {
		if key == "" || strings.ContainsAny(key, "=\" \t\n\r\v\f") || strings.HasPrefix(key, "-") || strings.Contains(value, `"`) {
			return
		}
		set := map[string]string{key: value}
		once := RewriteCmdline(current, set, []string{drop})
		if twice := RewriteCmdline(once, set, []string{drop}); twice != once {
			t.Fatalf("not idempotent:\n once %q\ntwice %q", once, twice)
		}
		words := cmdlineWords(once)
		if !slices.Contains(words, formatParam(key, value)) {
			t.Fatalf("%q lacks %q", once, formatParam(key, value))
		}
		// What follows "--" belongs to init and is never touched.
		in, out := cmdlineWords(current), words
		if i := slices.Index(in, "--"); i >= 0 {
			j := slices.Index(out, "--")
			if j < 0 || !slices.Equal(in[i:], out[j:]) {
				t.Fatalf("init arguments changed: %q -> %q", current, once)
			}
		}
	})
}

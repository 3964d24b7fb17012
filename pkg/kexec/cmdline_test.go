package kexec

import (
	"slices"
	"testing"

	"github.com/kho-sim/kho-sim/internal/cmdline"
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
			name:    "new keys are sorted and go before --; init's words are copied verbatim",
			current: "console=ttyS0 -- init-arg1  kho_sim.fdt=0xdead",
			set:     map[string]string{"kho_sim.hop": "2", "kho_sim.fdt": "0x10000000"},
			want:    "console=ttyS0 kho_sim.fdt=0x10000000 kho_sim.hop=2 -- init-arg1  kho_sim.fdt=0xdead",
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
			name:    "a quoted -- ends the kernel's parameters too",
			current: `a=1 "--" b=2`,
			set:     map[string]string{"b": "3"},
			want:    `a=1 b=3 "--" b=2`,
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
			name:    "an unterminated quote keeps running to the end: new words go before it",
			current: `console=ttyS0 x=a"b c`,
			set:     map[string]string{"y": "1"},
			want:    `console=ttyS0 y=1 x=a"b c`,
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
				got, err := RewriteCmdline(tt.current, tt.set, tt.drop)
				if err != nil || got != tt.want {
					t.Fatalf("RewriteCmdline(%q, %v, %v)\n got %q, %v\nwant %q", tt.current, tt.set, tt.drop, got, err, tt.want)
				}
			}
		})
	}
}

func TestRewriteCmdline_UnwritableParameter_Error(t *testing.T) {
	for _, set := range []map[string]string{
		{"x": `a"b`}, {"x": "a\x00b"}, {"": "1"}, {"a=b": "1"}, {"a b": "1"}, {"--": ""},
	} {
		if got, err := RewriteCmdline("console=ttyS0", set, nil); err == nil {
			t.Errorf("RewriteCmdline(%v) = %q, want an error", set, got)
		}
	}
}

// FuzzRewriteCmdline: the kernel reads the rewritten line as asked: the key
// with its value, the dropped key gone, every other parameter in its order,
// init's arguments untouched; and a second rewrite changes nothing.
func FuzzRewriteCmdline(f *testing.F) {
	f.Add("console=ttyS0 memmap=16M$0x10000000 kho_sim.fdt=0x1 -- a b", "kho_sim.fdt", "0x10000000", "console")
	f.Add(`x="a b" "y=c d" --`, "y", "e f", "x")
	f.Add(`a x=b"c d`, "z", "1", "a")
	f.Fuzz(func(t *testing.T, current, key, value, drop string) {
		set := map[string]string{key: value}
		once, err := RewriteCmdline(current, set, []string{drop})
		if err != nil {
			if _, ok := cmdline.Format(key, value); ok {
				t.Fatalf("error for a writable parameter: %v", err)
			}
			return
		}
		if twice, _ := RewriteCmdline(once, set, []string{drop}); twice != once {
			t.Fatalf("not idempotent:\n once %q\ntwice %q", once, twice)
		}
		in, out := cmdline.Parse(current), cmdline.Parse(once)
		if v, ok := out.Lookup(key); !ok || v != value {
			t.Fatalf("%q: %s reads %q, %v; want %q", once, key, v, ok, value)
		}
		k, d := cmdline.Key(key), cmdline.Key(drop)
		var kept, got []string
		for _, p := range in.Params {
			if p.Key() != k && p.Key() != d {
				kept = append(kept, p.Name+"="+p.Value)
			}
		}
		for _, p := range out.Params {
			if p.Key() == d && d != k {
				t.Fatalf("%q still holds dropped %q", once, drop)
			}
			if p.Key() != k {
				got = append(got, p.Name+"="+p.Value)
			}
		}
		if !slices.Equal(kept, got) {
			t.Fatalf("other parameters changed: %q -> %q", current, once)
		}
		if in.Init != out.Init || (in.Dashes != "") != (out.Dashes != "") {
			t.Fatalf("init arguments changed: %q -> %q", current, once)
		}
	})
}

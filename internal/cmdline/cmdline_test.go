package cmdline

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// show renders params compactly: name=value, name (no value), quoted with %q
// where it matters.
func show(ps []Param) string {
	var b []string
	for _, p := range ps {
		if p.HasValue {
			b = append(b, fmt.Sprintf("%q=%q", p.Name, p.Value))
		} else {
			b = append(b, fmt.Sprintf("%q", p.Name))
		}
	}
	return strings.Join(b, " ")
}

// TestParse_NextArgRules pins lib/cmdline.c next_arg and parse_args rule by
// rule.
func TestParse_NextArgRules(t *testing.T) {
	tests := []struct {
		rule   string
		in     string
		want   string // show() of the params
		dashes string
		init   string
	}{
		{"words split at white space", "console=ttyS0 quiet  panic=-1", `"console"="ttyS0" "quiet" "panic"="-1"`, "", ""},
		{"leading and trailing white space skipped", " \t\n quiet \n", `"quiet"`, "", ""},
		{"every isspace character splits, 0xa0 included", "a\tb\nc\vd\fe\rf\xa0g", `"a" "b" "c" "d" "e" "f" "g"`, "", ""},
		{"UTF-8 \u00e0 holds 0xa0 and is split by the kernel", "x=\u00e0b", "\"x\"=\"\\xc3\" \"b\"", "", ""},
		{`param="a b": the value's quotes go`, `foo="a b" bar`, `"foo"="a b" "bar"`, "", ""},
		{`"param=a b": the word's quotes go`, `"foo=a b" bar`, `"foo"="a b" "bar"`, "", ""},
		{`"param"=b: only the final quote of a quoted word goes`, `"a"=b`, `"a\""="b"`, "", ""},
		{"quotes inside a value stay", `x=a"b c"d y`, `"x"="a\"b c\"d" "y"`, "", ""},
		{"a quoted bare word loses its quotes", `"quiet" "a b"`, `"quiet" "a b"`, "", ""},
		{"the first = splits, later ones stay in the value", "a=b=c", `"a"="b=c"`, "", ""},
		{"a leading = is not a separator", "=a =b=c", `"=a" "=b"="c"`, "", ""},
		{"empty value", `a= b=""`, `"a"="" "b"=""`, "", ""},
		{"a lone quote as value", `a=" x`, `"a"=" x"`, "", ""},
		{"an unterminated quote runs to the end of the line", `a "b=c -- d`, `"a" "b"="c -- d"`, "", ""},
		{"-- ends the kernel's parameters", "a=1 -- b=2  c", `"a"="1"`, "--", "b=2  c"},
		{`a quoted "--" ends them too`, `a "--" b`, `"a"`, `"--"`, "b"},
		{"--=x does not end them", "--=x -- y", `"--"="x"`, "--", "y"},
		{"--x does not end them", "--x y", `"--x" "y"`, "", ""},
		{"the line ends at a NUL", "a=1\x00 b=2", `"a"="1"`, "", ""},
		{"empty", "", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			l := Parse(tt.in)
			if got := show(l.Params); got != tt.want || l.Dashes != tt.dashes || l.Init != tt.init {
				t.Fatalf("Parse(%q) = %s, dashes %q, init %q\nwant %s, dashes %q, init %q", tt.in, got, l.Dashes, l.Init, tt.want, tt.dashes, tt.init)
			}
		})
	}
}

func TestParse_RawKeepsQuotes(t *testing.T) {
	l := Parse(` x="1 2"  "y=3 4"z  w "open`)
	var raws []string
	for _, p := range l.Params {
		raws = append(raws, p.Raw)
	}
	if want := []string{`x="1 2"`, `"y=3 4"z`, "w", `"open`}; !slices.Equal(raws, want) {
		t.Fatalf("raw words %q, want %q", raws, want)
	}
}

func TestSplit_IncludesInitArguments(t *testing.T) {
	if got, want := show(Split(`a -- b="c d" --`)), `"a" "--" "b"="c d" "--"`; got != want {
		t.Fatalf("Split = %s, want %s", got, want)
	}
}

// TestLookup_ParameqFoldsDashes_LastWins: parameq treats '-' and '_' as
// equal, and a parameter given twice takes its last value.
func TestLookup_ParameqFoldsDashes_LastWins(t *testing.T) {
	l := Parse("kho-sim.fdt=0x1 quiet kho_sim.fdt=0x2 -- kho_sim.fdt=0x3")
	if v, ok := l.Lookup("kho_sim.fdt"); !ok || v != "0x2" {
		t.Errorf("Lookup(kho_sim.fdt) = %q, %v; want 0x2 (after -- belongs to init)", v, ok)
	}
	if v, ok := l.Lookup("quiet"); !ok || v != "" {
		t.Errorf("Lookup(quiet) = %q, %v; want present and empty", v, ok)
	}
	if _, ok := l.Lookup("kho_sim"); ok {
		t.Error("a prefix of a name matched")
	}
	m := l.Values()
	if len(m) != 2 || m["kho_sim.fdt"] != "0x2" {
		t.Errorf("Values = %v", m)
	}
}

func TestFormat(t *testing.T) {
	tests := []struct {
		name, value, want string
		ok                bool
	}{
		{"kho_sim.fdt", "0x10000000", "kho_sim.fdt=0x10000000", true},
		{"quiet", "", "quiet", true},
		{"kho_sim.scenario", "my scenario", `kho_sim.scenario="my scenario"`, true},
		{"x", "\u00e0", "x=\"\u00e0\"", true}, // 0xa0 inside
		{"x", `a"b`, "", false},
		{"x", "a\x00b", "", false},
		{"", "1", "", false},
		{"--", "", "", false},
		{"a=b", "1", "", false},
		{"a b", "1", "", false},
		{`"a`, "1", "", false},
	}
	for _, tt := range tests {
		got, ok := Format(tt.name, tt.value)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Format(%q, %q) = %q, %v; want %q, %v", tt.name, tt.value, got, ok, tt.want, tt.ok)
		}
	}
}

// FuzzParse: any line parses without panic, words never hold unquoted white
// space, and the words joined again read back the same (String).
func FuzzParse(f *testing.F) {
	f.Add(`console=ttyS0 memmap=16M$0x10000000 x="a b" "y=c d" -- init arg`)
	f.Add(`"a"=b =c "--" "open`)
	f.Add("a\xa0b\x00c")
	f.Add(`a=" "`)
	f.Fuzz(func(t *testing.T, s string) {
		l := Parse(s)
		for _, p := range l.Params {
			if p.Raw == "" || !strings.Contains(s, p.Raw) {
				t.Fatalf("raw word %q not in the line", p.Raw)
			}
			if p.HasValue && !strings.Contains(p.Raw, "=") {
				t.Fatalf("value without '=' in %q", p.Raw)
			}
		}
		again := Parse(l.String())
		if show(again.Params) != show(l.Params) || again.Dashes != l.Dashes || again.Init != l.Init {
			t.Fatalf("String does not read back:\n%q\n%q", s, l.String())
		}
		if l.Dashes == "" && len(Split(s)) != len(l.Params) {
			t.Fatalf("Split and Parse disagree without --")
		}
	})
}

// FuzzFormat: what Format writes, next_arg reads back as one parameter
// with exactly that name and value.
func FuzzFormat(f *testing.F) {
	f.Add("kho_sim.fdt", "0x1")
	f.Add("x", "a b")
	f.Add("=", "")
	f.Add("a", "=\xa0")
	f.Fuzz(func(t *testing.T, name, value string) {
		w, ok := Format(name, value)
		if !ok {
			return
		}
		ps := Parse(w).Params
		want := []Param{{Name: name, Value: value, HasValue: value != "", Raw: w}}
		if len(ps) != 1 || ps[0] != want[0] {
			t.Fatalf("Format(%q, %q) = %q reads back as %s", name, value, w, show(ps))
		}
	})
}

package scenario

import (
	"fmt"
	"io/fs"
	"path"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestBuiltinsParse(t *testing.T) {
	all, err := Builtins()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"abort", "default", "finish-before-retrieve", "registration-limits", "rollback", "sharing"}
	var got []string
	for _, sc := range all {
		got = append(got, sc.Name)
		if sc.Summary == "" {
			t.Errorf("%s: no summary", sc.Name)
		}
	}
	for _, w := range want {
		if !strings.Contains(strings.Join(got, " "), w) {
			t.Errorf("built-in %q missing (have %v)", w, got)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"yaml syntax", "name: [", "x.yaml:"},
		{"unknown top key", "name: a\nboot: []\n", "x.yaml:2: unknown key \"boot\""},
		{"unknown FLB key", "name: a\nflbs:\n  - {name: f, size: 3}\nboots: [{steps: []}]\n", "x.yaml:3: unknown key \"size\""},
		{"no name", "boots: [{steps: []}]\n", "missing name"},
		{"FLB data and payload", "name: a\nflbs:\n  - {name: f, data: 1, payload: 4K}\nboots: [{steps: []}]\n", "x.yaml:3: FLB \"f\" has both data and a payload"},
		{"shape without memfd", "name: a\nhandlers:\n  - {name: h}\nsessions:\n  - name: s\n    files:\n      - {token: 1, handler: h, shape: multi}\nboots: [{steps: []}]\n", "x.yaml:7: file 1 of session \"s\" has a shape, but handler \"h\" is not a memfd handler"},
		{"unknown shape", "name: a\nhandlers:\n  - {name: memfd-v2, memfd: true}\nsessions:\n  - name: s\n    files:\n      - {token: 1, handler: memfd-v2, shape: round}\nboots: [{steps: []}]\n", "x.yaml:7: file 1 of session \"s\": unknown memfd shape \"round\" (known: multi, large, sparse, sealed, empty)"},
		{"memfd payload", "name: a\nhandlers:\n  - {name: memfd-v2, memfd: true}\nsessions:\n  - name: s\n    files:\n      - {token: 1, handler: memfd-v2, shape: multi, payload: 4K}\nboots: [{steps: []}]\n", "x.yaml:7: file 1 of session \"s\": memfd handler \"memfd-v2\" files have a shape, not a payload"},
		{"no boots", "name: a\n", "at least one boot"},
		{"undeclared FLB", "name: a\nhandlers:\n  - {name: h, flbs: [nope]}\nboots: [{steps: []}]\n", "x.yaml:3: handler \"h\" depends on undeclared FLB \"nope\""},
		{"dup FLB", "name: a\nflbs:\n  - {name: f}\n  - {name: f}\nboots: [{steps: []}]\n", "x.yaml:4: FLB \"f\" declared twice"},
		{"bad size", "name: a\nflbs:\n  - {name: f, payload: 3GB}\nboots: [{steps: []}]\n", "bad size \"3GB\""},
		{"unknown op", "name: a\nboots:\n  - steps:\n      - fly\n", "x.yaml:4: unknown operation \"fly\""},
		{"bad errno", "name: a\nboots:\n  - steps:\n      - abort: {expect: EWHAT}\n", "x.yaml:4: unknown errno \"EWHAT\""},
		{"undeclared file", "name: a\nboots:\n  - steps:\n      - preserve: s/1\n", "x.yaml:4: undeclared file \"s/1\""},
		{"bad file form", "name: a\nboots:\n  - steps:\n      - preserve: s\n", "want SESSION/TOKEN"},
		{"bad end", "name: a\nboots:\n  - {steps: [], end: crash}\n", "x.yaml:3: boot 1: unknown end \"crash\""},
		{"dup token", "name: a\nhandlers: [{name: h}]\nsessions:\n  - name: s\n    files:\n      - {token: 1, handler: h}\n      - {token: 1, handler: h}\nboots: [{steps: []}]\n", "x.yaml:7: token 1 used twice"},
		{"fault without target", "name: a\nboots:\n  - steps:\n      - fault: {op: preserve, nth: 1, errno: ENOMEM}\n", "fault op preserve needs flb"},
		{"fault nth", "name: a\nflbs: [{name: f}]\nboots:\n  - steps:\n      - fault: {flb: f, op: preserve, nth: 0, errno: ENOMEM}\n", "nth must be a count"},
		{"two ops", "name: a\nboots:\n  - steps:\n      - {abort: , finish-all: }\n", "exactly one operation"},
		{"unknown flaw", "name: a\nflaw: nope\nboots: [{steps: []}]\n", "unknown flaw"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("x.yaml", strings.NewReader(tt.src))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func TestStepForms(t *testing.T) {
	sc, err := Parse("x.yaml", strings.NewReader(`name: a
flbs: [{name: f, payload: 4KiB}]
handlers: [{name: h, flbs: [f]}]
sessions: [{name: s, files: [{token: 3, handler: h, payload: 512}]}]
boots:
  - steps:
      - preserve-all
      - preserve: s/3
      - register-flb: {handler: h, flb: f, expect: EEXIST}
`))
	if err != nil {
		t.Fatal(err)
	}
	st := sc.Boots[0].Steps
	if st[0].Op != "preserve-all" || st[1].Arg != "s/3" || st[2].Expect != unix.EEXIST || st[2].Args["flb"] != "f" {
		t.Fatalf("steps parsed wrong: %+v", st)
	}
	if st[2].Line != 9 {
		t.Fatalf("line %d, want 9", st[2].Line)
	}
	if sc.FLB("f").Payload != 4096 || sc.File("s", 3).Payload != 512 {
		t.Fatal("payload sizes parsed wrong")
	}
}

func TestBootRepeatsLast(t *testing.T) {
	sc, err := Lookup("default")
	if err != nil {
		t.Fatal(err)
	}
	if b := sc.Boot(0, 3); b.End != EndKexec || b.Steps[0].Op != "preserve-all" {
		t.Fatalf("boot 0: %+v", b)
	}
	if b := sc.Boot(5, 7); b.End != EndKexec || b.Steps[0].Op != "retrieve-all" {
		t.Fatalf("boot 5 should repeat the last: %+v", b)
	}
	if b := sc.Boot(2, 3); b.End != "" {
		t.Fatalf("the last boot ends the run, got end %q", b.End)
	}
}

func TestLookupUnknown(t *testing.T) {
	_, err := Lookup("nope")
	if err == nil || !strings.Contains(err.Error(), "built-in: abort") {
		t.Fatalf("got %v", err)
	}
}

func TestBootCycle(t *testing.T) {
	sc, err := Lookup("many-hops")
	if err != nil {
		t.Fatal(err)
	}
	// boots 0..3 as listed, then the last three in turn: 1 2 3 1 2 3 ...
	want := []int{0, 1, 2, 3, 1, 2, 3, 1}
	for i, w := range want {
		if got := sc.Boot(i, 20); got.Line != sc.Boots[w].Line {
			t.Errorf("boot %d runs the boot at line %d, want line %d", i, got.Line, sc.Boots[w].Line)
		}
	}
}

// The real-consumer scenario carries lib/tests/liveupdate.c's data handles
// (TEST_FLB_MAGIC_BASE + i), which do not fit an int64.
func TestRealConsumerTestFLBData(t *testing.T) {
	sc, err := Lookup("real-consumer")
	if err != nil {
		t.Fatal(err)
	}
	if len(sc.FLBs) != 3 {
		t.Fatalf("%d FLBs, want the 3 test FLBs", len(sc.FLBs))
	}
	for i, f := range sc.FLBs {
		want := uint64(0xfeedf00dcafebee0) + uint64(i)
		if f.Data == nil || *f.Data != want || f.Payload != 0 {
			t.Errorf("FLB %s: data %v payload %d, want %#x and no payload", f.Name, f.Data, f.Payload, want)
		}
		if wantName := fmt.Sprintf("liveupdate-test-flb-v%d", i); f.Name != wantName {
			t.Errorf("FLB %d is %q, want %q", i, f.Name, wantName)
		}
	}
	if len(sc.Handlers) != 1 || !sc.Handlers[0].Memfd || sc.Handlers[0].Name != "memfd-v2" {
		t.Errorf("handlers %+v, want one memfd handler memfd-v2", sc.Handlers)
	}
}

// TestLookupEveryBuiltin: every built-in lives in NAME.yaml (Lookup's fast
// path parses only that file) and Lookup returns what Builtins does.
func TestLookupEveryBuiltin(t *testing.T) {
	all, err := Builtins()
	if err != nil {
		t.Fatal(err)
	}
	names, err := fs.Glob(builtinFS, "builtin/*.yaml")
	if err != nil || len(names) != len(all) {
		t.Fatalf("%d files, %d scenarios (%v)", len(names), len(all), err)
	}
	for i, sc := range all {
		if file := strings.TrimSuffix(path.Base(names[i]), ".yaml"); file != sc.Name {
			t.Errorf("builtin/%s.yaml holds scenario %q", file, sc.Name)
		}
		got, err := Lookup(sc.Name)
		if err != nil || !reflect.DeepEqual(got, sc) {
			t.Errorf("Lookup(%q) = %+v, %v; Builtins has %+v", sc.Name, got, err, sc)
		}
	}
}

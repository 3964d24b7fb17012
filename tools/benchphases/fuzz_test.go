package main

import (
	"os"
	"strings"
	"testing"
)

// FuzzParseLog feeds arbitrary serial logs through parsing, attribution and
// the table: none of it may panic.
func FuzzParseLog(f *testing.F) {
	for _, name := range []string{"testdata/mixed-4boots.log", "testdata/kexec-tools-fails.log"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("KTAP version 1\n1..1\n    KTAP version 1\n    # phase kexec_file_load (kexec-tools) 1e308 ms\n    1..0\nok 1 boot-1\n")
	f.Fuzz(func(t *testing.T, log string) {
		boots, err := ParseLog(strings.NewReader(log))
		if err != nil {
			return
		}
		s := Samples{}
		s.Add(boots)
		for _, p := range s.Phases() {
			s.Ratio(p)
		}
		if err := s.WriteTable(&strings.Builder{}); err != nil {
			t.Fatal(err)
		}
	})
}

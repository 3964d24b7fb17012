package fdt

import "testing"

// buildLUO makes the calls the kernel makes for its LUO FDT.
func buildLUO() ([]byte, error) {
	b := NewBuilder(4096)
	b.BeginNode("")
	b.PropertyString("compatible", "luo-v1")
	b.PropertyU64("liveupdate-number", 3)
	b.BeginNode("luo-session")
	b.PropertyString("compatible", "luo-session-v2")
	b.PropertyU64("luo-session-header", 0x1234000)
	b.EndNode()
	b.BeginNode("luo-flb")
	b.PropertyString("compatible", "luo-flb-v1")
	b.PropertyU64("luo-flb-header", 0x5678000)
	b.EndNode()
	b.EndNode()
	return b.Finish()
}

func BenchmarkBuild(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := buildLUO(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	blob, err := buildLUO()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(blob)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(blob); err != nil {
			b.Fatal(err)
		}
	}
}

func TestBuildLUOMatchesTree(t *testing.T) {
	got, err := buildLUO()
	if err != nil {
		t.Fatal(err)
	}
	want, err := Encode(luoTree())
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("typed property helpers differ from raw values:\n%x\n%x", got, want)
	}
}

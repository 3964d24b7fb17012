package main

import (
	"bytes"
	kcmdline "github.com/kho-sim/kho-sim/internal/cmdline"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"
)

func TestParseHopPlan(t *testing.T) {
	for _, tt := range []struct {
		name    string
		cmdline string
		want    hopPlan
		wantErr bool
	}{
		{"no hops", "console=ttyS0 kho=on luo_stage=2", hopPlan{}, false},
		{"first of two hops", "console=ttyS0 luo_kernel=7.2 luo_next=7.3,7.2", hopPlan{"7.2", []string{"7.3", "7.2"}}, false},
		{"last boot", "luo_kernel=7.2 luo_stage=2", hopPlan{kernel: "7.2"}, false},
		{"empty next", "luo_kernel=7.3 luo_next=", hopPlan{kernel: "7.3"}, false},
		{"next without kernel", "luo_next=7.3", hopPlan{}, true},
		{"path in a name", "luo_kernel=../bzImage", hopPlan{}, true},
		{"empty name in next", "luo_kernel=7.2 luo_next=7.3,,7.2", hopPlan{}, true},
		{"too many hops", "luo_kernel=a luo_next=a,a,a,a,a,a,a,a,a,a,a,a,a,a,a,a,a", hopPlan{}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseHopPlan(kcmdline.Parse(tt.cmdline))
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error %v", err, tt.wantErr)
			}
			if got.kernel != tt.want.kernel || !slices.Equal(got.next, tt.want.next) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestNextCmdline: each hop hands the next kernel its name, the rest of
// the plan and luo_stage=2, once, whatever the previous boot carried.
func TestNextCmdline(t *testing.T) {
	for _, tt := range []struct {
		cmdline string
		want    string
	}{
		{"console=ttyS0 kho=on luo_kernel=7.2 luo_next=7.3,7.2", "console=ttyS0 kho=on luo_kernel=7.3 luo_next=7.2 luo_stage=2"},
		{"console=ttyS0 luo_kernel=7.3 luo_next=7.2 luo_stage=2", "console=ttyS0 luo_kernel=7.2 luo_stage=2"},
	} {
		p, err := parseHopPlan(kcmdline.Parse(tt.cmdline))
		if err != nil {
			t.Fatal(err)
		}
		got, err := p.nextCmdline(tt.cmdline)
		if err != nil || got != tt.want {
			t.Errorf("nextCmdline(%q) = %q, %v; want %q", tt.cmdline, got, err, tt.want)
		}
		if q, err := parseHopPlan(kcmdline.Parse(got)); err != nil || q.kernel != p.next[0] || !slices.Equal(q.next, p.next[1:]) {
			t.Errorf("next boot reads %+v, %v; want kernel %s, next %q", q, err, p.next[0], p.next[1:])
		}
	}
}

// TestPackHops packs kernels and selftests for hops only, and refuses a
// kernel given twice or a malformed -hop.
func TestPackHops(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	k72, s72, k73, s73 := write("k72", "MZ 7.2"), write("s72", "ELF 7.2"), write("k73", "MZ 7.3"), write("s73", "ELF 7.3")
	out := filepath.Join(dir, "hops.cpio")
	for _, tt := range []struct {
		name    string
		args    []string
		wantErr bool
	}{
		{"kernel given twice", []string{"pack", "-hop", "7.2=" + k72 + "," + s72, "-hop", "7.2=" + k73 + "," + s73, "-o", out}, true},
		{"no selftest", []string{"pack", "-hop", "7.2=" + k72, "-o", out}, true},
		{"bad name", []string{"pack", "-hop", "a/b=" + k72 + "," + s72, "-o", out}, true},
		{"kernel without selftest", []string{"pack", "-kernel", k72, "-o", out}, true},
		{"two kernels", []string{"pack", "-hop", "7.2=" + k72 + "," + s72, "-hop", "7.3=" + k73 + "," + s73, "-o", out}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := pack(tt.args); (err != nil) != tt.wantErr {
				t.Fatalf("pack: %v, want error %v", err, tt.wantErr)
			}
		})
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(b)))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range recs {
		if r.Mode&cpio.S_IFMT == cpio.S_IFREG && r.Name != initPath {
			data := make([]byte, r.FileSize)
			if _, err := r.ReadAt(data, 0); err != nil {
				t.Fatal(err)
			}
			got[r.Name] = string(data)
		}
	}
	want := map[string]string{"kernel-7.2": "MZ 7.2", "luo_kexec_simple-7.2": "ELF 7.2", "kernel-7.3": "MZ 7.3", "luo_kexec_simple-7.3": "ELF 7.3"}
	if len(got) != len(want) {
		t.Errorf("files %v, want %v", got, want)
	}
	for name, data := range want {
		if got[name] != data {
			t.Errorf("/%s = %q, want %q", name, got[name], data)
		}
	}
}

package e2e

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestWatchdog(t *testing.T) {
	tests := []struct {
		name      string
		sinceOut  time.Duration // how long ago the guest last printed
		sinceRun  time.Duration // how long ago the run started
		timeout   time.Duration
		silence   time.Duration
		closeDone bool
		want      string
	}{
		{name: "silent guest", sinceOut: 5 * time.Second, sinceRun: 5 * time.Second, timeout: time.Hour, silence: 2 * time.Second,
			want: "guest printed nothing for 2s"},
		{name: "time limit", sinceOut: 0, sinceRun: 10 * time.Second, timeout: 3 * time.Second, silence: time.Hour,
			want: "time limit of 3s reached"},
		{name: "run ends first", sinceOut: 0, sinceRun: 0, timeout: time.Hour, silence: time.Hour, closeDone: true,
			want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Now()
			serial := &activityWriter{w: &strings.Builder{}, last: now.Add(-tt.sinceOut)}
			done := make(chan struct{})
			if tt.closeDone {
				close(done)
			}
			canceled := false
			got := watchdog(done, serial, now.Add(-tt.sinceRun), tt.timeout, tt.silence, func() { canceled = true })
			if got != tt.want {
				t.Errorf("watchdog = %q, want %q", got, tt.want)
			}
			if canceled != (tt.want != "") {
				t.Errorf("cancel called = %v, want %v", canceled, tt.want != "")
			}
		})
	}
}

func TestActivityWriterRecordsWrites(t *testing.T) {
	var sb strings.Builder
	old := time.Now().Add(-time.Hour)
	a := &activityWriter{w: &sb, last: old}
	if _, err := a.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if !a.lastWrite().After(old) || sb.String() != "x" {
		t.Errorf("after Write: last %v (was %v), wrote %q", a.lastWrite(), old, sb.String())
	}
}

func TestLineLogger(t *testing.T) {
	var got []string
	l := &lineLogger{logf: func(format string, args ...any) { got = append(got, fmt.Sprintf(format, args...)) }}
	for _, chunk := range []string{"Booting\x1b[2J from", " ROM\r\nok 1 a\n", "partial"} {
		if n, err := l.Write([]byte(chunk)); n != len(chunk) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", chunk, n, err)
		}
	}
	want := []string{"guest: Booting[2J from ROM", "guest: ok 1 a"}
	if !slices.Equal(got, want) {
		t.Errorf("lines = %q, want %q", got, want)
	}
}

func TestAbiNumber(t *testing.T) {
	tests := []struct {
		path string
		want int
	}{
		{"/c/linux-image-6.1.0-56-cloud-amd64/boot/vmlinuz-6.1.0-56-cloud-amd64", 56},
		{"/c/linux-image-6.1.0-9-cloud-amd64/boot/vmlinuz-6.1.0-9-cloud-amd64", 9},
		{"/c/vmlinuz", -1},
		{"/c/vmlinuz-6.1.0-x-cloud-amd64", -1},
	}
	for _, tt := range tests {
		if got := abiNumber(tt.path); got != tt.want {
			t.Errorf("abiNumber(%q) = %d, want %d", tt.path, got, tt.want)
		}
	}
	paths := []string{tests[0].path, tests[1].path}
	slices.SortFunc(paths, compareABI)
	if paths[1] != tests[0].path {
		t.Errorf("newest kernel sorted first: %q", paths)
	}
}

func TestBannerVersions(t *testing.T) {
	log := "[    0.000000] Linux version 7.3-cloud-amd64 (debian-kernel@lists.debian.org) (gcc)\r\n" +
		"KTAP version 1\r\n" +
		"[    0.000000] Linux version 6.1.0-56-cloud-amd64 (debian-kernel@lists.debian.org)\r\n" +
		"Linux version \r\n"
	want := []string{"7.3-cloud-amd64", "6.1.0-56-cloud-amd64"}
	if got := bannerVersions([]byte(log)); !slices.Equal(got, want) {
		t.Errorf("bannerVersions = %q, want %q", got, want)
	}
}

func TestCheckLog(t *testing.T) {
	cross, err := os.ReadFile("testdata/qemu-6.1-7.x-6.1.log")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		c    qemuCase
		want []string
	}{
		{name: "banners match", c: qemuCase{banners: []string{"6.1.", "7.", "6.1."}}},
		{name: "banners in another order", c: qemuCase{banners: []string{"7.", "6.1.", "7."}}, want: []string{
			"boot 1 ran Linux 6.1.0-57-cloud-amd64, want 7.*",
			"boot 2 ran Linux 7.3-cloud-amd64, want 6.1.*",
			"boot 3 ran Linux 6.1.0-57-cloud-amd64, want 7.*",
		}},
		{name: "wanted and rejected text", c: qemuCase{
			wantLog:   []string{"# kho-sim: done", "not in the log"},
			rejectLog: []string{"XFAIL", "Subtest: boot-2 hop 1"},
		}, want: []string{`serial log lacks "not in the log"`, `serial log holds "Subtest: boot-2 hop 1"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := checkLog(cross, tt.c, 3); !slices.Equal(got, tt.want) {
				t.Errorf("checkLog = %q, want %q", got, tt.want)
			}
		})
	}
	if got := checkLog(cross, qemuCase{banners: []string{"6.1."}}, 1); len(got) != 1 || !strings.Contains(got[0], "3 kernel banners") {
		t.Errorf("checkLog with one boot = %q, want a count mismatch", got)
	}
}

func TestCheckEveryHop(t *testing.T) {
	tests := []struct {
		log     string
		results []string
		want    []string
	}{
		{log: "qemu-3boots.log", results: []string{resultLUOMatches, resultPayloadsMatch, resultStepsAsPlanned}},
		{log: "qemu-finish-before-retrieve.log", results: []string{resultFinishOnce, "no such result"}, want: []string{
			`boot 2: "` + resultFinishOnce + `" did not plainly pass`,
			`boot 2: no result "no such result"`,
			`boot 3: "` + resultFinishOnce + `" did not plainly pass`,
			`boot 3: no result "no such result"`,
		}},
		{log: "qemu-corrupt-missing-flb-node.log", results: []string{resultLUOMatches, resultPayloadsMatch}, want: []string{
			`boot 2: "` + resultLUOMatches + `" did not plainly pass`,
			`boot 2: no result "` + resultPayloadsMatch + `"`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.log, func(t *testing.T) {
			if got := checkEveryHop(parseLog(t, tt.log), tt.results); !slices.Equal(got, tt.want) {
				t.Errorf("checkEveryHop:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

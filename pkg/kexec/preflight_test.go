package kexec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Fake /proc/self/status lines: root's full set, and a set without bit 22.
const (
	capEffRoot      = "Name:\tkho-sim\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n"
	capEffNoSysBoot = "Name:\tkho-sim\nCapEff:\t000001ffffbfffff\n"
)

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestReadPreflight(t *testing.T) {
	tests := []struct {
		name         string
		files        map[string]string
		want         Preflight
		wantProblems []string // substrings, one per problem, in order
		wantWarnings []string
	}{
		{
			name: "all clear",
			files: map[string]string{
				loadDisabledPath: "0\n", kexecLoadedPath: "0\n", statusPath: capEffRoot,
				lockdownPath: "[none] integrity confidentiality\n", limitRebootPath: "-1\n",
			},
			want: Preflight{KexecCore: true, LoadLimitReboot: -1, Lockdown: "none", CapSysBoot: true},
		},
		{
			name:         "disabled, no capability, limit used up",
			files:        map[string]string{loadDisabledPath: "1\n", statusPath: capEffNoSysBoot, limitRebootPath: "0\n"},
			want:         Preflight{KexecCore: true, LoadDisabled: true, LoadLimitReboot: 0},
			wantProblems: []string{"CAP_SYS_BOOT", "kexec_load_disabled=1", "kexec_load_limit_reboot=0"},
		},
		{
			name:         "kernel without kexec, securityfs absent",
			files:        map[string]string{statusPath: capEffRoot},
			want:         Preflight{LoadLimitReboot: -1, CapSysBoot: true},
			wantProblems: []string{"CONFIG_KEXEC_CORE"},
		},
		{
			name: "lockdown and an image already loaded are warnings",
			files: map[string]string{
				loadDisabledPath: "0", kexecLoadedPath: "1", statusPath: capEffRoot,
				lockdownPath: "none [integrity] confidentiality", limitRebootPath: "3",
			},
			want:         Preflight{KexecCore: true, LoadLimitReboot: 3, Lockdown: "integrity", CapSysBoot: true, KexecLoaded: true},
			wantWarnings: []string{"lockdown=integrity", "already loaded"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadPreflight(writeTree(t, tt.files))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("ReadPreflight = %+v, want %+v", got, tt.want)
			}
			matchAll(t, "Problems", got.Problems(), tt.wantProblems)
			matchAll(t, "Warnings", got.Warnings(), tt.wantWarnings)
		})
	}
}

func matchAll(t *testing.T, what string, got, wantSubstrings []string) {
	t.Helper()
	if len(got) != len(wantSubstrings) {
		t.Fatalf("%s = %q, want %d entries matching %q", what, got, len(wantSubstrings), wantSubstrings)
	}
	for i, w := range wantSubstrings {
		if !strings.Contains(got[i], w) {
			t.Errorf("%s[%d] = %q, want it to mention %q", what, i, got[i], w)
		}
	}
}

func TestReadPreflightErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"no /proc/self/status", map[string]string{loadDisabledPath: "0"}, "is /proc mounted"},
		{"garbage flag", map[string]string{loadDisabledPath: "yes", statusPath: capEffRoot}, "want 0 or 1"},
		{"garbage limit", map[string]string{limitRebootPath: "many", statusPath: capEffRoot}, "kexec_load_limit_reboot"},
		{"garbage CapEff", map[string]string{statusPath: "Name:\tx\nCapEff:\tzz\n"}, "CapEff: strconv"},
		{"no CapEff", map[string]string{statusPath: "Name:\tx\n"}, "no CapEff line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadPreflight(writeTree(t, tt.files))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ReadPreflight error = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

// The host's own state must at least parse.
func TestReadPreflightHost(t *testing.T) {
	if _, err := ReadPreflight(""); err != nil {
		t.Fatal(err)
	}
}

package kexec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKHOLoadPreflight: what the kexec_load mode needs. Lockdown, only a
// warning for kexec_file_load with a signed image, is a problem here: the
// kernel refuses kexec_load (and /dev/mem) under any lockdown. A next
// kernel that is not a bzImage is one line naming it.
func TestKHOLoadPreflight(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "bzImage")
	if err := os.WriteFile(good, testBzImage(t), 0o644); err != nil {
		t.Fatal(err)
	}
	elf := filepath.Join(dir, "vmlinux")
	if err := os.WriteFile(elf, append([]byte("\x7fELF"), make([]byte, 4096)...), 0o644); err != nil {
		t.Fatal(err)
	}
	clear := map[string]string{loadDisabledPath: "0\n", statusPath: capEffRoot, lockdownPath: "[none] integrity confidentiality\n"}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range clear {
			m[a] = b
		}
		m[k] = v
		return m
	}
	tests := []struct {
		name   string
		files  map[string]string
		kernel string
		want   []string
	}{
		{"all clear", clear, good, nil},
		{"no kernel named", clear, "", nil},
		{"kexec_load_disabled", with(loadDisabledPath, "1\n"), good, []string{"kexec_load_disabled=1"}},
		{"integrity lockdown", with(lockdownPath, "none [integrity] confidentiality\n"), good, []string{"lockdown=integrity: kexec_load(2) and /dev/mem are refused"}},
		{"confidentiality lockdown", with(lockdownPath, "none integrity [confidentiality]\n"), good, []string{"lockdown=confidentiality"}},
		{"not a bzImage", clear, elf, []string{elf + " is not an x86 bzImage"}},
		{"missing kernel", clear, filepath.Join(dir, "nothing"), []string{"no such file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := KHOLoadPreflight(writeTree(t, tt.files), tt.kernel)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("problems %q, want %d", got, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) || strings.Contains(got[i], "\n") {
					t.Errorf("problem %d %q, want one line with %q", i, got[i], w)
				}
			}
		})
	}
}

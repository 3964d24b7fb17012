package lava

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

type monitor struct {
	Name    string            `yaml:"name"`
	Start   string            `yaml:"start"`
	End     string            `yaml:"end"`
	Pattern string            `yaml:"pattern"`
	Fixup   map[string]string `yaml:"fixupdict"`
}

type job struct {
	Actions []struct {
		Deploy *struct {
			Images map[string]struct {
				ImageArg string `yaml:"image_arg"`
			} `yaml:"images"`
		} `yaml:"deploy"`
		Boot *struct {
			Method  string   `yaml:"method"`
			Prompts []string `yaml:"prompts"`
		} `yaml:"boot"`
		Test *struct {
			Monitors []monitor `yaml:"monitors"`
		} `yaml:"test"`
	} `yaml:"actions"`
}

func loadJob(t *testing.T, path string) job {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var j job
	if err := yaml.Unmarshal(b, &j); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return j
}

// cases runs a monitor over a log the way LAVA's test monitor does
// (lava_dispatcher/actions/test/monitor.py, through pexpect): it waits for
// the start string, then searches the rest of the console stream, not line
// by line, for the end string or the pattern, whichever comes first, and
// goes on after each match. As in pexpect (re.DOTALL, no re.MULTILINE), a
// plain ^ anchors only where the previous match ended.
func cases(t *testing.T, m monitor, log string) map[string]string {
	t.Helper()
	re, err := regexp.Compile("(?s)" + m.Pattern)
	if err != nil {
		t.Fatalf("monitor %s: pattern: %v", m.Name, err)
	}
	log = strings.ReplaceAll(log, "\r\n", "\n")
	i := strings.Index(log, m.Start)
	if i < 0 {
		t.Fatalf("monitor %s: start %q never seen", m.Name, m.Start)
	}
	rest := log[i+len(m.Start):]
	out := map[string]string{}
	for {
		end := strings.Index(rest, m.End)
		g := re.FindStringSubmatchIndex(rest)
		if g == nil || (end >= 0 && end <= g[0]) {
			if end < 0 {
				t.Fatalf("monitor %s: end %q never seen", m.Name, m.End)
			}
			return out
		}
		sub := func(name string) string {
			k := re.SubexpIndex(name)
			return rest[g[2*k]:g[2*k+1]]
		}
		out[sub("test_case_id")] = m.Fixup[sub("result")]
		rest = rest[g[1]:]
	}
}

func TestMonitorsReadRealLog(t *testing.T) {
	log, err := os.ReadFile("../../e2e/testdata/qemu-3boots.log")
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"kho-sim-qemu.yaml", "kho-sim-board.yaml"} {
		t.Run(file, func(t *testing.T) {
			var mons []monitor
			for _, a := range loadJob(t, file).Actions {
				if a.Test != nil {
					mons = append(mons, a.Test.Monitors...)
				}
			}
			if len(mons) != 1 {
				t.Fatalf("%d monitors, want 1", len(mons))
			}
			got := cases(t, mons[0], string(log))
			want := map[string]string{"boot-1": "pass", "boot-2": "pass", "boot-3": "pass"}
			if len(got) != len(want) {
				t.Fatalf("test cases %v, want %v", got, want)
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s: %q, want %q", k, got[k], v)
				}
			}
			failed := strings.Replace(string(log), "\nok 2 boot-2", "\nnot ok 2 boot-2", 1)
			if r := cases(t, mons[0], failed)["boot-2"]; r != "fail" {
				t.Errorf("a failed boot reads as %q, want fail", r)
			}
			// Nested subtest results are not test cases of their own.
			for k := range got {
				if !strings.HasPrefix(k, "boot-") {
					t.Errorf("unexpected test case %q", k)
				}
			}
		})
	}
}

// TestPlainCaretMatchesNothing shows why the patterns need (?m): LAVA
// searches the console stream, so a bare ^ only anchors where the last
// match ended, and no boot would be recorded.
func TestPlainCaretMatchesNothing(t *testing.T) {
	log, err := os.ReadFile("../../e2e/testdata/qemu-3boots.log")
	if err != nil {
		t.Fatal(err)
	}
	m := monitor{Name: "old", Start: "KTAP version 1", End: "# kho-sim: done",
		Pattern: `^(?P<result>ok|not ok) \d+ (?P<test_case_id>boot-\d+)\b`, Fixup: map[string]string{"ok": "pass"}}
	if got := cases(t, m, string(log)); len(got) != 0 {
		t.Errorf("test cases %v, want none", got)
	}
}

// TestQEMUJobKernelArgs checks the command line where LAVA's QEMU boot
// method takes it: in the kernel's image_arg (the method has no
// kernel_args), and that the boot waits for no prompt, which would read the
// console up to it and leave the monitor nothing.
func TestQEMUJobKernelArgs(t *testing.T) {
	var deployed, booted bool
	for _, a := range loadJob(t, "kho-sim-qemu.yaml").Actions {
		if a.Deploy != nil {
			deployed = true
			arg := a.Deploy.Images["kernel"].ImageArg
			if !strings.HasPrefix(arg, "-kernel {kernel} -append \"") || !strings.HasSuffix(arg, "\"") {
				t.Errorf("kernel image_arg %q: want -kernel {kernel} -append \"...\"", arg)
			}
			for _, w := range []string{"console=ttyS0", "memmap=16M$0x10000000", "kho_sim.hops=2", "panic=-1"} {
				if !strings.Contains(arg, w) {
					t.Errorf("kernel image_arg %q lacks %q", arg, w)
				}
			}
			if arg := a.Deploy.Images["ramdisk"].ImageArg; arg != "-initrd {ramdisk}" {
				t.Errorf("ramdisk image_arg %q, want -initrd {ramdisk}", arg)
			}
		}
		if a.Boot != nil {
			booted = true
			if a.Boot.Method != "qemu" || len(a.Boot.Prompts) != 0 {
				t.Errorf("boot method %q with prompts %q, want qemu without prompts", a.Boot.Method, a.Boot.Prompts)
			}
		}
	}
	if !deployed || !booted {
		t.Fatalf("deploy action %v, boot action %v: want both", deployed, booted)
	}
}

func TestPreflightDefinitionParses(t *testing.T) {
	b, err := os.ReadFile("kho-sim-preflight.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var def struct {
		Metadata struct {
			Format string `yaml:"format"`
			Name   string `yaml:"name"`
		} `yaml:"metadata"`
		Run struct {
			Steps []string `yaml:"steps"`
		} `yaml:"run"`
	}
	if err := yaml.Unmarshal(b, &def); err != nil {
		t.Fatal(err)
	}
	if def.Metadata.Format != "Lava-Test Test Definition 1.0" || len(def.Run.Steps) == 0 {
		t.Fatalf("bad definition: %+v", def)
	}
	joined := strings.Join(def.Run.Steps, "\n")
	for _, w := range []string{"kho-sim preflight", "kho-sim run --dry-run", "lava-test-case"} {
		if !strings.Contains(joined, w) {
			t.Errorf("steps lack %q", w)
		}
	}
}

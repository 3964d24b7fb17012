package lava

import (
	"bufio"
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
		Boot *struct {
			KernelArgs string `yaml:"kernel_args"`
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

// cases runs a monitor over a log the way LAVA's test monitor does: from
// the start string to the end string, one test case per matching line.
func cases(t *testing.T, m monitor, log string) map[string]string {
	t.Helper()
	re, err := regexp.Compile(m.Pattern)
	if err != nil {
		t.Fatalf("monitor %s: pattern: %v", m.Name, err)
	}
	out := map[string]string{}
	started := false
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if !started {
			started = strings.Contains(line, m.Start)
			continue
		}
		if strings.Contains(line, m.End) {
			return out
		}
		if g := re.FindStringSubmatch(line); g != nil {
			res := g[re.SubexpIndex("result")]
			out[g[re.SubexpIndex("test_case_id")]] = m.Fixup[res]
		}
	}
	t.Fatalf("monitor %s: end %q never seen", m.Name, m.End)
	return nil
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

func TestQEMUJobKernelArgs(t *testing.T) {
	for _, a := range loadJob(t, "kho-sim-qemu.yaml").Actions {
		if a.Boot == nil {
			continue
		}
		for _, w := range []string{"console=ttyS0", "memmap=16M$0x10000000", "kho_sim.hops=2", "panic=-1"} {
			if !strings.Contains(a.Boot.KernelArgs, w) {
				t.Errorf("kernel_args %q lacks %q", a.Boot.KernelArgs, w)
			}
		}
		return
	}
	t.Fatal("no boot action")
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

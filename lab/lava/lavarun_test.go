package lava

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kho-sim/kho-sim/internal/kunit"
)

// The environment of TestQEMULAVAJob, as in e2e/qemu_test.go.
const (
	envRequired  = "KHO_SIM_E2E"       // "required": fail instead of skipping
	envKernel    = "KHO_SIM_KERNEL"    // bzImage to boot (scripts/fetch-kernel.sh)
	envInitramfs = "KHO_SIM_INITRAMFS" // prebuilt initramfs with that kernel inside; else initramfs/build.sh
)

// lavaTimeout bounds lava-run: three boots under TCG take 15-60 s.
const lavaTimeout = 10 * time.Minute

// logLine is one line of lava-run's output: a JSON object per line.
type logLine struct {
	Level string          `json:"lvl"`
	Msg   json.RawMessage `json:"msg"`
}

// lavaResult is a "results" message: a LAVA test case.
type lavaResult struct {
	Definition string `json:"definition"`
	Case       string `json:"case"`
	Result     string `json:"result"`
}

func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(envRequired) == "required" {
		t.Fatalf("%s (%s=required)", msg, envRequired)
	}
	t.Skip(msg)
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// absEnv returns the path in the environment variable, relative ones taken
// from the repository's root.
func absEnv(t *testing.T, name string) string {
	p := os.Getenv(name)
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(repoRoot(t), p)
}

// TestQEMULAVAJob runs kho-sim-qemu.yaml in LAVA's own dispatcher
// (lava-run, no server) against the device dictionary qemu-tcg.yaml, and
// checks LAVA's results: one passing test case per boot of the chain, the
// monitor's end string found, the job passed. The serial console goes to
// out/lava-TestQEMULAVAJob.log, LAVA's log to the same name with .jsonl.
// Its name begins with TestQEMU so that the unit-test step of
// scripts/test.sh leaves it to its own step.
func TestQEMULAVAJob(t *testing.T) {
	if _, err := exec.LookPath("lava-run"); err != nil {
		skipOrFail(t, "lava-run not found: apt-get install lava-dispatcher")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		skipOrFail(t, "qemu-system-x86_64 not found")
	}
	kernel := absEnv(t, envKernel)
	if kernel == "" {
		skipOrFail(t, "%s is not set (scripts/fetch-kernel.sh prints a kernel)", envKernel)
	}
	initramfs := absEnv(t, envInitramfs)
	if initramfs == "" {
		initramfs = filepath.Join(t.TempDir(), "kho-sim.cpio")
		start := time.Now()
		if b, err := exec.Command(filepath.Join(repoRoot(t), "initramfs", "build.sh"), initramfs, kernel).CombinedOutput(); err != nil {
			t.Fatalf("initramfs/build.sh: %v\n%s", err, b)
		}
		t.Logf("initramfs built in %.1f s", time.Since(start).Seconds())
	}
	job, err := os.ReadFile("kho-sim-qemu.yaml")
	if err != nil {
		t.Fatal(err)
	}
	boots := jobBoots(t, string(job))
	dir := t.TempDir()
	jobFile := filepath.Join(dir, "job.yaml")
	filled := strings.NewReplacer("KERNEL_URL", "file://"+kernel, "INITRAMFS_URL", "file://"+initramfs).Replace(string(job))
	if err := os.WriteFile(jobFile, []byte(filled), 0o644); err != nil {
		t.Fatal(err)
	}
	device, err := filepath.Abs("qemu-tcg.yaml")
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), lavaTimeout)
	defer cancel()
	// The job id names LAVA's download directory under
	// /var/lib/lava/dispatcher/tmp: one per process, so runs side by side
	// do not share it.
	cmd := exec.CommandContext(ctx, "lava-run", "--job-id", strconv.Itoa(os.Getpid()),
		"--output-dir", filepath.Join(dir, "out"), "--device", device, jobFile)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	runErr := cmd.Run()
	t.Logf("lava-run: %.1f s", time.Since(start).Seconds())

	outDir := filepath.Join(repoRoot(t), "out")
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(outDir, "lava-"+t.Name())
	if err := os.WriteFile(base+".jsonl", out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	serial, results, err := readLAVALog(out.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(base+".log", []byte(serial), 0o644); err != nil {
		t.Fatal(err)
	}
	if runErr != nil {
		t.Errorf("lava-run: %v (log: %s.jsonl)", runErr, base)
	}

	got := map[string]string{}
	var lava []string
	for _, r := range results {
		if r.Definition == "kho-sim" {
			if _, dup := got[r.Case]; dup {
				t.Errorf("test case %s reported twice", r.Case)
			}
			got[r.Case] = r.Result
		} else {
			lava = append(lava, r.Case+"="+r.Result)
			if r.Result != "pass" {
				t.Errorf("LAVA's own %s action: %s", r.Case, r.Result)
			}
		}
	}
	t.Logf("LAVA results: kho-sim %v; lava %v", got, lava)
	for i := 1; i <= boots; i++ {
		c := fmt.Sprintf("boot_%d", i)
		if got[c] != "pass" {
			t.Errorf("test case %s: %q, want pass", c, got[c])
		}
		delete(got, c)
	}
	if len(got) > 0 {
		t.Errorf("test cases beyond the %d boots: %v", boots, got)
	}
	for _, want := range []string{"lava-test-monitor=pass", "job=pass"} {
		if !strings.Contains(" "+strings.Join(lava, " ")+" ", " "+want+" ") {
			t.Errorf("LAVA's results lack %s: %v", want, lava)
		}
	}
	// The same console through the kernel's own KTAP parser.
	if k, err := kunit.Path(); err == nil {
		c, err := kunit.Check(k, base+".log")
		if err != nil {
			t.Error(err)
		}
		t.Logf("kunit.py: %s", c)
	}
}

// jobBoots reads kho_sim.hops= from the job's kernel command line.
func jobBoots(t *testing.T, job string) int {
	t.Helper()
	m := regexp.MustCompile(`kho_sim\.hops=([0-9]+)`).FindStringSubmatch(job)
	if m == nil {
		t.Fatal("the job's command line has no kho_sim.hops=")
	}
	n, _ := strconv.Atoi(m[1])
	return n + 1
}

// readLAVALog splits lava-run's output into the serial console (the
// "target" lines) and the results. Lines that are not JSON are skipped:
// Python's warnings, and lava-dispatcher 2023.01's file-download results,
// which it writes with a YAML tag in them ("size": ! "14190528").
func readLAVALog(b []byte) (string, []lavaResult, error) {
	var serial strings.Builder
	var results []lavaResult
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l logLine
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		switch l.Level {
		case "target":
			var s string
			if json.Unmarshal(l.Msg, &s) == nil {
				serial.WriteString(s + "\n")
			}
		case "results":
			var r lavaResult
			if err := json.Unmarshal(l.Msg, &r); err != nil {
				return "", nil, fmt.Errorf("lava-run results line %s: %w", sc.Bytes(), err)
			}
			results = append(results, r)
		}
	}
	if err := sc.Err(); err != nil {
		return "", nil, err
	}
	if len(results) == 0 {
		return serial.String(), nil, fmt.Errorf("lava-run reported no results:\n%s", b)
	}
	return serial.String(), results, nil
}

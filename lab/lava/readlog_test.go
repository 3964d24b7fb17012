package lava

import (
	"strings"
	"testing"
)

func TestReadLAVALog(t *testing.T) {
	log := `{"dt": "2026-12-03T07:56:10.8", "lvl": "info", "msg": "lava-dispatcher, installed at version: 2023.01"}
{"dt": "2026-12-03T07:56:10.9", "lvl": "results", "msg": {"case": "validate", "definition": "lava", "result": "pass"}}
{"dt": "2026-12-03T07:56:11.0", "lvl": "results", "msg": {"case": "file-download", "definition": "lava", "duration": "0.15", "extra": {"label": "kernel", "size": 14000000}, "level": "1.1.1", "namespace": "common", "result": "pass"}}
{"dt": "2026-12-03T07:56:12.0", "lvl": "target", "msg": "KTAP version 1"}
/usr/lib/python3/dist-packages/something.py:1: DeprecationWarning: not JSON
{"dt": "2026-12-03T07:56:11.1", "lvl": "results", "msg": {"case": "file-download", "definition": "lava", "extra": {"size": ! "14190528"}, "result": "pass"}}
{"dt": "2026-12-03T07:56:12.1", "lvl": "target", "msg": "ok 1 boot-1 cold boot, scenario default"}
{"dt": "2026-12-03T07:56:12.2", "lvl": "results", "msg": {"case": "boot_1", "definition": "kho-sim", "extra": {"test_case_id": "boot-1"}, "level": "3.1", "result": "pass"}}
`
	serial, results, err := readLAVALog([]byte(log))
	if err != nil {
		t.Fatal(err)
	}
	if want := "KTAP version 1\nok 1 boot-1 cold boot, scenario default\n"; serial != want {
		t.Errorf("serial %q, want %q", serial, want)
	}
	var got []string
	for _, r := range results {
		got = append(got, r.Definition+"/"+r.Case+"="+r.Result)
	}
	if want := "lava/validate=pass lava/file-download=pass kho-sim/boot_1=pass"; strings.Join(got, " ") != want {
		t.Errorf("results %q, want %q", strings.Join(got, " "), want)
	}
	if _, _, err := readLAVALog([]byte("{\"lvl\": \"info\", \"msg\": \"x\"}\n")); err == nil {
		t.Error("a log without results: no error")
	}
}

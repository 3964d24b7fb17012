package readfile

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	all := func(r io.Reader) (string, error) {
		b, err := io.ReadAll(r)
		return string(b), err
	}
	if got, err := Parse(path, all); err != nil || got != "hello" {
		t.Errorf("Parse = %q, %v; want hello", got, err)
	}
	bad := errors.New("bad")
	if _, err := Parse(path, func(io.Reader) (int, error) { return 0, bad }); !errors.Is(err, bad) || !strings.HasPrefix(err.Error(), path+": ") {
		t.Errorf("a parse error: %v, want it wrapped with the path", err)
	}
	if _, err := Parse(filepath.Join(dir, "missing"), all); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing file: %v, want fs.ErrNotExist", err)
	}
}

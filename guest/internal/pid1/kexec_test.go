package pid1

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// TestGuestsKexecThroughPkgKexec: the guest programs load and reboot into
// the next kernel through pkg/kexec (its errors name every argument and
// explain the errno), never with the raw system calls.
func TestGuestsKexecThroughPkgKexec(t *testing.T) {
	raw := map[string]bool{
		"KexecFileLoad": true, "KexecLoad": true, "LINUX_REBOOT_CMD_KEXEC": true,
		"SYS_KEXEC_FILE_LOAD": true, "SYS_KEXEC_LOAD": true,
	}
	files := 0
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") {
			return err
		}
		files++
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok && raw[sel.Sel.Name] {
				if pkg, ok := sel.X.(*ast.Ident); ok && (pkg.Name == "unix" || pkg.Name == "syscall") {
					t.Errorf("%s: %s.%s: use pkg/kexec", path, pkg.Name, sel.Sel.Name)
				}
			}
			return true
		})
		return nil
	})
	if err != nil || files < 10 {
		t.Fatalf("walked %d guest files: %v", files, err)
	}
}

// Package readfile parses whole files: one place says how a parser of an
// io.Reader is applied to a path, and that its errors name the file.
package readfile

import (
	"bytes"
	"fmt"
	"io"
	"os"
)

// Parse reads the file at path and hands its bytes to parse. An error
// opening or reading the file is returned as it is (an *fs.PathError,
// naming the file); a parse error is wrapped with the path.
func Parse[T any](path string, parse func(io.Reader) (T, error)) (T, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		var zero T
		return zero, err
	}
	v, err := parse(bytes.NewReader(raw))
	if err != nil {
		return v, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

package kernel

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// PutStruct writes v, a struct whose fields in order and unpadded are a C
// struct's layout on x86-64, into b little endian. b must hold
// binary.Size(v) bytes; a shorter b is a caller's bug and panics, as
// indexing past it would.
func PutStruct[T any](b []byte, v T) {
	if _, err := binary.Encode(b[:binary.Size(v)], binary.LittleEndian, v); err != nil {
		panic(fmt.Sprintf("kernel.PutStruct(%T): %v", v, err))
	}
}

// ReadStruct decodes the C struct named what from the start of b (see
// PutStruct), without judging its values. A b shorter than the struct is
// EINVAL.
func ReadStruct[T any](what string, b []byte) (T, error) {
	var v T
	n := binary.Size(v)
	if n < 0 || len(b) < n {
		return v, fmt.Errorf("%s: %d bytes, want %d: %w", what, len(b), n, unix.EINVAL)
	}
	if _, err := binary.Decode(b[:n], binary.LittleEndian, &v); err != nil {
		return v, fmt.Errorf("%s: %w", what, err)
	}
	return v, nil
}

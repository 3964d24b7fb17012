package kernel

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

type testStruct struct {
	A uint64
	B uint32
	C uint16
	D uint16
}

func TestStructRoundTrip(t *testing.T) {
	v := testStruct{A: 0x0102030405060708, B: 0x11121314, C: 0x2122, D: 0x3132}
	b := make([]byte, 17)
	b[16] = 0xee
	PutStruct(b, v)
	want := []byte{8, 7, 6, 5, 4, 3, 2, 1, 0x14, 0x13, 0x12, 0x11, 0x22, 0x21, 0x32, 0x31, 0xee}
	if string(b) != string(want) {
		t.Fatalf("PutStruct: % x, want % x (little endian, unpadded, nothing past the struct)", b, want)
	}
	got, err := ReadStruct[testStruct]("test", b)
	if err != nil || got != v {
		t.Fatalf("ReadStruct = %+v, %v; want %+v", got, err, v)
	}
}

func TestReadStructShort(t *testing.T) {
	for _, n := range []int{0, 1, 15} {
		_, err := ReadStruct[testStruct]("test", make([]byte, n))
		if !errors.Is(err, unix.EINVAL) {
			t.Errorf("%d bytes: err = %v, want EINVAL", n, err)
		}
	}
}

package liveupdate

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

func TestIoctlNumbers(t *testing.T) {
	// _IO(0xBA, nr): no direction, no size.
	for _, tt := range []struct {
		name string
		got  uintptr
		want uintptr
	}{
		{"CREATE_SESSION", ioctlCreateSession, 0xba00},
		{"RETRIEVE_SESSION", ioctlRetrieveSession, 0xba01},
		{"SESSION_PRESERVE_FD", ioctlSessionPreserve, 0xba40},
		{"SESSION_RETRIEVE_FD", ioctlSessionRetrieve, 0xba41},
		{"SESSION_FINISH", ioctlSessionFinish, 0xba42},
		{"SESSION_GET_NAME", ioctlSessionGetName, 0xba43},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %#x, want %#x", tt.name, tt.got, tt.want)
		}
	}
	// The argument sizes of include/uapi/linux/liveupdate.h.
	if sessionArgSize != 72 || fdArgSize != 16 || finishArgSize != 8 || getNameArgSize != 72 {
		t.Errorf("argument sizes %d %d %d %d, want 72 16 8 72", sessionArgSize, fdArgSize, finishArgSize, getNameArgSize)
	}
}

func TestSessionArg(t *testing.T) {
	b, err := sessionArg("kho-sim-a")
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != sessionArgSize || b[0] != sessionArgSize || string(b[8:17]) != "kho-sim-a" || b[17] != 0 {
		t.Errorf("sessionArg = %x", b)
	}
	for _, name := range []string{"0123456789012345678901234567890123456789012345678901234567890123", "a\x00b"} {
		if _, err := sessionArg(name); !errors.Is(err, unix.EINVAL) {
			t.Errorf("sessionArg(%q): %v, want EINVAL", name, err)
		}
	}
	if _, err := sessionArg("012345678901234567890123456789012345678901234567890123456789012"); err != nil {
		t.Errorf("a 63-byte name: %v", err)
	}
}

// Package liveupdate is the user-space side of Linux 7.2's Live Update
// Orchestrator: the /dev/liveupdate and session-file ioctls of
// include/uapi/linux/liveupdate.h (kernel/liveupdate/luo_core.c,
// luo_session.c).
package liveupdate

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/pkg/luo"
)

// /dev/liveupdate ioctls of Linux 7.2 (include/uapi/linux/liveupdate.h):
// _IO(LIVEUPDATE_IOCTL_TYPE, nr), so the request is just type<<8 | nr; each
// argument starts with a u32 size the kernel uses to version it.
const (
	luoType              = 0xBA
	ioctlCreateSession   = luoType<<8 | 0x00
	ioctlRetrieveSession = luoType<<8 | 0x01
	ioctlSessionPreserve = luoType<<8 | 0x40
	ioctlSessionRetrieve = luoType<<8 | 0x41
	ioctlSessionFinish   = luoType<<8 | 0x42
	ioctlSessionGetName  = luoType<<8 | 0x43
	sessionArgSize       = 4 + 4 + luo.SessionNameLen // create/retrieve_session
	fdArgSize            = 4 + 4 + 8                  // preserve_fd/retrieve_fd
	finishArgSize        = 4 + 4                      // finish
	getNameArgSize       = 4 + 4 + luo.SessionNameLen // get_name
)

// Device is LUO's character device.
const Device = "/dev/liveupdate"

// Open opens Device for the session ioctls.
func Open() (*os.File, error) { return OpenPath(Device) }

// OpenPath opens LUO's device at path.
func OpenPath(path string) (*os.File, error) {
	// The *fs.PathError names the device.
	return os.OpenFile(path, os.O_RDWR, 0)
}

// ioctl issues req on fd with arg as the argument structure, which the
// kernel reads and may write back.
func ioctl(fd int, req uintptr, arg []byte) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(unsafe.Pointer(&arg[0])))
	if e != 0 {
		return e
	}
	return nil
}

func sessionArg(name string) ([]byte, error) {
	if len(name) >= luo.SessionNameLen || bytes.IndexByte([]byte(name), 0) >= 0 {
		return nil, fmt.Errorf("session name %q: %w", name, unix.EINVAL)
	}
	b := make([]byte, sessionArgSize)
	binary.LittleEndian.PutUint32(b, sessionArgSize)
	copy(b[8:], name)
	return b, nil
}

// luoSession calls CREATE_SESSION or RETRIEVE_SESSION and returns the new
// session file.
func luoSession(dev *os.File, req uintptr, name string) (*os.File, error) {
	b, err := sessionArg(name)
	if err != nil {
		return nil, err
	}
	if err := ioctl(int(dev.Fd()), req, b); err != nil {
		return nil, fmt.Errorf("ioctl(%s, %#x, %q): %w", dev.Name(), req, name, err)
	}
	fd := int32(binary.LittleEndian.Uint32(b[4:]))
	return os.NewFile(uintptr(fd), "session:"+name), nil
}

// CreateSession creates an outgoing session (LIVEUPDATE_IOCTL_CREATE_SESSION).
func CreateSession(dev *os.File, name string) (*os.File, error) {
	return luoSession(dev, ioctlCreateSession, name)
}

// RetrieveSession opens a session the previous kernel handed over
// (LIVEUPDATE_IOCTL_RETRIEVE_SESSION).
func RetrieveSession(dev *os.File, name string) (*os.File, error) {
	return luoSession(dev, ioctlRetrieveSession, name)
}

// PreserveFD hands fd to the session under token (SESSION_PRESERVE_FD).
func PreserveFD(session *os.File, fd int, token uint64) error {
	b := make([]byte, fdArgSize)
	binary.LittleEndian.PutUint32(b, fdArgSize)
	binary.LittleEndian.PutUint32(b[4:], uint32(int32(fd)))
	binary.LittleEndian.PutUint64(b[8:], token)
	if err := ioctl(int(session.Fd()), ioctlSessionPreserve, b); err != nil {
		return fmt.Errorf("ioctl(%s, PRESERVE_FD, fd %d, token %#x): %w", session.Name(), fd, token, err)
	}
	return nil
}

// RetrieveFD returns the file preserved under token (SESSION_RETRIEVE_FD).
func RetrieveFD(session *os.File, token uint64) (*os.File, error) {
	b := make([]byte, fdArgSize)
	binary.LittleEndian.PutUint32(b, fdArgSize)
	binary.LittleEndian.PutUint64(b[8:], token)
	if err := ioctl(int(session.Fd()), ioctlSessionRetrieve, b); err != nil {
		return nil, fmt.Errorf("ioctl(%s, RETRIEVE_FD, token %#x): %w", session.Name(), token, err)
	}
	fd := int32(binary.LittleEndian.Uint32(b[4:]))
	return os.NewFile(uintptr(fd), fmt.Sprintf("%s:%#x", session.Name(), token)), nil
}

// FinishSession releases the session's preserved state (SESSION_FINISH).
func FinishSession(session *os.File) error {
	b := make([]byte, finishArgSize)
	binary.LittleEndian.PutUint32(b, finishArgSize)
	if err := ioctl(int(session.Fd()), ioctlSessionFinish, b); err != nil {
		return fmt.Errorf("ioctl(%s, FINISH): %w", session.Name(), err)
	}
	return nil
}

// SessionName asks the kernel for the session's name (SESSION_GET_NAME).
func SessionName(session *os.File) (string, error) {
	b := make([]byte, getNameArgSize)
	binary.LittleEndian.PutUint32(b, getNameArgSize)
	if err := ioctl(int(session.Fd()), ioctlSessionGetName, b); err != nil {
		return "", fmt.Errorf("ioctl(%s, GET_NAME): %w", session.Name(), err)
	}
	name := b[8:]
	if i := bytes.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	return string(name), nil
}

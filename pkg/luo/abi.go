package luo

import (
	"bytes"
	"encoding/binary"

	"github.com/kho-sim/kho-sim/pkg/flb"
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// LUO FDT names, include/linux/kho/abi/luo.h.
const (
	FDTSize              = physmem.PageSize // LUO_FDT_SIZE
	FDTKHOEntryName      = "LUO"
	FDTCompatible        = "luo-v1"
	FDTLiveupdateNum     = "liveupdate-number"
	FDTSessionNode       = "luo-session"
	FDTSessionCompatible = "luo-session-v2"
	FDTSessionHeader     = "luo-session-header"
	FDTFLBNode           = "luo-flb"
	FDTFLBCompatible     = "luo-flb-v1"
	FDTFLBHeader         = "luo-flb-header"
)

// Serialized session and file blocks (packed, little endian):
//
//	struct luo_session_header_ser { u64 count; };
//	struct luo_session_ser { char name[64]; u64 files; u64 count; };
//	struct luo_file_ser { char compatible[48]; u64 data; u64 token; };
const (
	SessionPages      = 16 // LUO_SESSION_PGCNT
	SessionBlockSize  = SessionPages * physmem.PageSize
	SessionHeaderSize = 8
	SessionEntrySize  = 80
	SessionNameLen    = 64                                                        // LIVEUPDATE_SESSION_NAME_LENGTH
	SessionMax        = (SessionBlockSize - SessionHeaderSize) / SessionEntrySize // 819

	FilePages        = 2 // LUO_FILE_PGCNT
	FileBlockSize    = FilePages * physmem.PageSize
	FileEntrySize    = 64
	FileMax          = FileBlockSize / FileEntrySize // 128
	HandlerCompatLen = 48                            // LIVEUPDATE_HNDL_COMPAT_LENGTH

	FLBPageSize = flb.PageCount * kernel.PageSize
)

var le = binary.LittleEndian

// The fields of struct luo_session_ser {char name[64]; struct
// luo_file_set_ser {u64 files; u64 count;}} and struct luo_file_ser {char
// compatible[48]; u64 data; u64 token;}, the same in every generation:
// the writers, the Core's incoming side and Decode all go through these.

func sessionSer(e []byte) (name []byte, files, count uint64) {
	return e[:SessionNameLen], le.Uint64(e[SessionNameLen:]), le.Uint64(e[SessionNameLen+8:])
}

// putFileSet writes a session entry's luo_file_set_ser.
func putFileSet(e []byte, files, count uint64) {
	le.PutUint64(e[SessionNameLen:], files)
	le.PutUint64(e[SessionNameLen+8:], count)
}

func fileSer(e []byte) (compat []byte, data, token uint64) {
	return e[:HandlerCompatLen], le.Uint64(e[HandlerCompatLen:]), le.Uint64(e[HandlerCompatLen+8:])
}

// putFileSer writes a luo_file_ser entry, the compatible by strscpy.
func putFileSer(e []byte, compat string, data, token uint64) {
	strscpy(e[:HandlerCompatLen], compat)
	le.PutUint64(e[HandlerCompatLen:], data)
	le.PutUint64(e[HandlerCompatLen+8:], token)
}

// cstring returns b up to its first NUL (all of b if none).
func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return string(b[:i])
	}
	return string(b)
}

// strscpy models strscpy(dst, src, len(dst)) of a C string: at most
// len(dst)-1 bytes, a NUL, no padding.
func strscpy(dst []byte, src string) {
	if i := bytes.IndexByte([]byte(src), 0); i >= 0 {
		src = src[:i]
	}
	n := copy(dst[:len(dst)-1], src)
	dst[n] = 0
}

// handlerCompat models a `const char compatible[48]` of a file handler: the
// string up to its NUL and whether the array holds a NUL; ok is false when
// the literal would not fit (does not compile in C).
func handlerCompat(s string) (name string, terminated, ok bool) {
	if len(s) > HandlerCompatLen {
		return "", false, false
	}
	if i := bytes.IndexByte([]byte(s), 0); i >= 0 {
		return s[:i], true, true
	}
	return s, len(s) < HandlerCompatLen, true
}

// compatMatches models strcmp(handler->compatible, ser) == 0 for a serialized
// 48-byte compatible field followed by the rest of its entry. An unterminated
// handler compatible runs past its array into pointers and matches nothing.
func compatMatches(handler string, ser []byte) bool {
	name, terminated, _ := handlerCompat(handler)
	if !terminated || len(ser) <= len(name) {
		return false
	}
	return string(ser[:len(name)]) == name && ser[len(name)] == 0
}

// compatibleOf is what a kernel of generation g writes as, and expects
// to find in, the "LUO" child's compatible: the LUO FDT's root compatible
// before 7.2, luo_ser's compatible field in 7.2.
func compatibleOf(g kernel.Generation) string {
	switch g.OrDefault() {
	case kernel.LUOv2:
		return FDTCompatibleV2
	case kernel.V72:
		return SerCompatible
	}
	return FDTCompatible
}

// The luo-v2 step (include/linux/kho/abi/luo.h of that series):
//
//	LUO FDT / { compatible = "luo-v2"; luo-abi-header = <u64 PA>; };
//	struct luo_ser { u64 liveupdate_num; u64 sessions_pa; u64 flbs_pa; };
const (
	FDTCompatibleV2 = "luo-v2"
	FDTABIHeader    = "luo-abi-header"
	SerV2Size       = 24
)

// Linux 7.2 (include/linux/kho/abi/luo.h and block.h):
//
//	struct luo_ser { char compatible[8]; u64 liveupdate_num;
//	                 u64 sessions_pa; u64 flbs_pa; };
//	struct kho_block_header_ser { u64 next; u64 count; };
//
// followed in each one-page block by luo_session_ser (80 bytes) or
// luo_file_ser (64 bytes) entries.
const (
	SerCompatible = "luo-v5" // LUO_ABI_COMPATIBLE
	SerCompatLen  = 8        // LUO_ABI_COMPAT_LEN: ALIGN(sizeof("luo-v5"), 8)
	SerSize       = SerCompatLen + 24

	BlockSize        = physmem.PageSize // KHO_BLOCK_SIZE
	BlockHeaderSize  = 16
	SessionsPerBlock = (BlockSize - BlockHeaderSize) / SessionEntrySize // 51
	FilesPerBlock    = (BlockSize - BlockHeaderSize) / FileEntrySize    // 63
	// MaxBlocks is KHO_MAX_BLOCKS: the most blocks one set may have, the
	// only bound 7.2 puts on sessions and files (ENOSPC beyond it).
	MaxBlocks = 10000
)

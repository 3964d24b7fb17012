package main

import (
	"fmt"
	"hash/crc32"
)

// plannedFile is one memfd the guest preserves: its token and size.
type plannedFile struct {
	token uint64
	size  int
}

// plannedSession is one session and its memfds, in preservation order.
type plannedSession struct {
	name  string
	files []plannedFile
}

// testPlan is what stage 1 preserves and stage 2 expects: two sessions,
// four memfds of different sizes (one page, a partial fourth page, a
// single byte, two pages).
func testPlan() []plannedSession {
	return []plannedSession{
		{"kho-sim-a", []plannedFile{{0x1001, 4096}, {0x1002, 3*4096 + 100}, {0x1003, 1}}},
		{"kho-sim-b", []plannedFile{{0x2001, 2 * 4096}}},
	}
}

// memfdContent is the content of the memfd with token: a readable header,
// then a pattern that differs per token and per byte.
func memfdContent(token uint64, size int) []byte {
	b := make([]byte, size)
	head := fmt.Sprintf("kho-sim memfd token %#x size %d\n", token, size)
	for i := range b {
		if i < len(head) {
			b[i] = head[i]
		} else {
			b[i] = byte(uint64(i)*7 + token)
		}
	}
	return b
}

func checksum(b []byte) uint32 { return crc32.ChecksumIEEE(b) }

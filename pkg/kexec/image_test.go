package kexec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

const realSetup = "testdata/vmlinuz-6.1.0-56-cloud-amd64.setup"

// synthBzImage returns the first two sectors of a bzImage that
// bzImage64_probe accepts, with one setup sector.
func synthBzImage() []byte {
	h := make([]byte, x86HeaderLen)
	copy(h, "MZ")
	h[offSetupSects] = 1
	binary.LittleEndian.PutUint16(h[offBootFlag:], 0xaa55)
	copy(h[offHdrS:], "HdrS")
	binary.LittleEndian.PutUint16(h[offVersion:], 0x020f)
	h[offLoadflags] = loadedHigh
	h[offRelocatable] = 1
	binary.LittleEndian.PutUint16(h[offXLoadflags:], xlfKernel64|xlfAbove4G)
	binary.LittleEndian.PutUint32(h[offCmdlineSize:], 2047)
	return h
}

func TestImageProblem(t *testing.T) {
	realHdr, err := os.ReadFile(realSetup)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		hdr    []byte
		size   int64 // 0: len(hdr)
		arch   string
		mutate func(h []byte)
		want   string // substring of the problem; "" = accepted
	}{
		{name: "real Debian bzImage", hdr: realHdr, arch: "amd64"},
		{name: "synthetic bzImage", hdr: synthBzImage(), arch: "amd64"},
		{name: "no HdrS", hdr: synthBzImage(), arch: "amd64", mutate: func(h []byte) { copy(h[offHdrS:], "HdrX") }, want: "no HdrS magic at 0x202"},
		{name: "no boot flag", hdr: synthBzImage(), arch: "amd64", mutate: func(h []byte) { h[offBootFlag] = 0 }, want: "boot_flag"},
		{name: "protocol 2.11", hdr: synthBzImage(), arch: "amd64", mutate: func(h []byte) { h[offVersion] = 0x0b }, want: "protocol 2.11"},
		{name: "zImage", hdr: synthBzImage(), arch: "amd64", mutate: func(h []byte) { h[offLoadflags] = 0 }, want: "LOADED_HIGH"},
		{name: "32-bit", hdr: synthBzImage(), arch: "amd64", mutate: func(h []byte) { h[offXLoadflags] = xlfAbove4G }, want: "XLF_KERNEL_64"},
		{name: "below 4G only", hdr: synthBzImage(), arch: "amd64", mutate: func(h []byte) { h[offXLoadflags] = xlfKernel64 }, want: "XLF_CAN_BE_LOADED_ABOVE_4G"},
		{name: "not relocatable", hdr: synthBzImage(), arch: "amd64", mutate: func(h []byte) { h[offRelocatable] = 0 }, want: "not relocatable"},
		{name: "truncated", hdr: realHdr, size: 4096, arch: "amd64", want: "truncated"},
		{name: "one sector", hdr: synthBzImage()[:512], arch: "amd64", want: "too short"},
		{name: "empty", hdr: nil, arch: "amd64", want: "too short"},
		{name: "unchecked architecture", hdr: []byte("#!/bin/sh"), arch: "arm64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := bytes.Clone(tt.hdr)
			if tt.mutate != nil {
				tt.mutate(h)
			}
			size := tt.size
			if size == 0 {
				size = int64(len(h))
			}
			got := imageProblem(h, size, tt.arch)
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Fatalf("imageProblem = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCheckKernelImage(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("x86 image checks run on amd64 only")
	}
	dir := t.TempDir()
	notKernel := filepath.Join(dir, "initrd.cpio")
	if err := os.WriteFile(notKernel, bytes.Repeat([]byte("070701"), 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
		want       string // substring of the error; "" = nil
		unloadable bool   // errors.Is(err, ErrUnloadableImage)
	}{
		{name: "real bzImage setup sectors", path: realSetup},
		{name: "cpio archive", path: notKernel, want: notKernel + " is not an x86 bzImage (no HdrS magic at 0x202)", unloadable: true},
		{name: "directory", path: dir, want: "not a regular file", unloadable: true},
		{name: "missing", path: filepath.Join(dir, "vmlinuz"), want: "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckKernelImage(tt.path)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("CheckKernelImage(%s) = %v, want %q", tt.path, err, tt.want)
			}
			if errors.Is(err, ErrUnloadableImage) != tt.unloadable {
				t.Errorf("errors.Is(%v, ErrUnloadableImage) = %v, want %v", err, !tt.unloadable, tt.unloadable)
			}
			if tt.name == "missing" && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("error %v does not wrap fs.ErrNotExist", err)
			}
		})
	}
}

func TestCmdlineLimit(t *testing.T) {
	other := filepath.Join(t.TempDir(), "x")
	if err := os.WriteFile(other, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path   string
		limit  int
		wantOK bool
	}{
		{realSetup, 2047 - 30 - 1, true},
		{other, 0, false},
		{"/nonexistent/vmlinuz", 0, false},
	}
	for _, tt := range tests {
		if limit, ok := cmdlineLimit(tt.path); limit != tt.limit || ok != tt.wantOK {
			t.Errorf("cmdlineLimit(%s) = %d, %v; want %d, %v", tt.path, limit, ok, tt.limit, tt.wantOK)
		}
	}
}

// Any bytes at all must give an answer, never a panic.
func FuzzImageProblem(f *testing.F) {
	f.Add(synthBzImage(), int64(x86HeaderLen))
	f.Add([]byte("MZ"), int64(2))
	f.Fuzz(func(t *testing.T, hdr []byte, size int64) {
		got := imageProblem(hdr, size, "amd64")
		if len(hdr) < x86HeaderLen && got == "" {
			t.Fatalf("a %d-byte header was accepted", len(hdr))
		}
	})
}

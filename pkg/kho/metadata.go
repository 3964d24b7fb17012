package kho

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// KexecMetadata is 7.2's struct kho_kexec_metadata: which kernel handed
// over and how many kexec boots happened since the last cold boot.
type KexecMetadata struct {
	Version         uint32
	PreviousRelease string
	KexecCount      uint32
}

// KexecMetadata reads the kexec-metadata child of a kho-v4 handover as
// kho_in_kexec_metadata does, but strictly: ENOENT without the child (and
// always for kho-v1, which has none), EINVAL for a blob shorter than the
// version, a version other than 1, a blob shorter than the struct, or a
// release without a NUL in its 65 bytes (the kernel's strscpy would cut it
// silently) or a kexec_count of 0 (kho_out_kexec_metadata writes at least 1). Where 7.2 only warns and ignores the metadata, kho-sim refuses it.
func (in *Incoming) KexecMetadata() (KexecMetadata, error) {
	var m KexecMetadata
	if in.format != CompatibleV4 {
		return m, fmt.Errorf("kho: %s handovers carry no %s: %w", in.format, KexecMetadataName, unix.ENOENT)
	}
	blob, err := in.SubtreeBytes(KexecMetadataName)
	if err != nil {
		return m, err
	}
	if len(blob) < 4 {
		return m, fmt.Errorf("kho: %s blob too small (%d bytes): %w", KexecMetadataName, len(blob), unix.EINVAL)
	}
	m.Version = binary.LittleEndian.Uint32(blob)
	if m.Version != KexecMetadataVersion {
		return m, fmt.Errorf("kho: %s version %d not supported (expected %d): %w", KexecMetadataName, m.Version, KexecMetadataVersion, unix.EINVAL)
	}
	if len(blob) < KexecMetadataSize {
		return m, fmt.Errorf("kho: %s blob too small for v%d (%d < %d): %w", KexecMetadataName, m.Version, len(blob), KexecMetadataSize, unix.EINVAL)
	}
	rel := blob[4 : 4+ReleaseLen]
	i := bytes.IndexByte(rel, 0)
	if i < 0 {
		return m, fmt.Errorf("kho: %s previous_release has no NUL in its %d bytes: %w", KexecMetadataName, ReleaseLen, unix.EINVAL)
	}
	m.PreviousRelease = string(rel[:i])
	m.KexecCount = binary.LittleEndian.Uint32(blob[4+ReleaseLen:])
	if m.KexecCount == 0 {
		return m, fmt.Errorf("kho: %s kexec_count 0: a kernel hands over its incoming count plus one: %w", KexecMetadataName, unix.EINVAL)
	}
	return m, nil
}

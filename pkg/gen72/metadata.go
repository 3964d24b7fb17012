package gen72

import (
	"encoding/binary"
	"fmt"
)

// The kexec-metadata ABI of Linux 7.2 (include/linux/kho/abi/kexec_metadata.h).
const (
	// MetadataVersion is KHO_KEXEC_METADATA_VERSION.
	MetadataVersion = 1
	// MetadataSize is sizeof(struct kho_kexec_metadata), packed: u32
	// version; char previous_release[__NEW_UTS_LEN + 1]; u32 kexec_count.
	MetadataSize = 4 + releaseLen + 4
	releaseLen   = 65
)

// KexecMetadata is struct kho_kexec_metadata.
type KexecMetadata struct {
	PA              uint64
	Size            uint64 // blob-size
	Version         uint32
	PreviousRelease string // uname -r of the kernel that kexec'd
	KexecCount      uint32 // kexec boots since the last cold boot
}

// ReadKexecMetadata decodes the kexec-metadata child sub, checking what
// kho_in_kexec_metadata checks (size, version) and that the release string
// is terminated and the count is not zero.
func ReadKexecMetadata(mem Memory, sub Subtree) (*KexecMetadata, error) {
	return readMetadata(mem, newClaims(), sub)
}

func readMetadata(mem Memory, claimed *claims, sub Subtree) (*KexecMetadata, error) {
	if sub.Size < MetadataSize || sub.Size > PageSize {
		return nil, fmt.Errorf("kexec-metadata at %#x: blob-size %d, want %d..%d: %w", sub.PA, sub.Size, MetadataSize, PageSize, ErrBadSize)
	}
	if err := checkPage("kexec-metadata", sub.PA); err != nil {
		return nil, err
	}
	if err := claimed.claim("kexec-metadata", sub.PA, sub.Size); err != nil {
		return nil, err
	}
	b, err := read(mem, "kexec-metadata", sub.PA, MetadataSize)
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	m := &KexecMetadata{PA: sub.PA, Size: sub.Size, Version: le.Uint32(b), KexecCount: le.Uint32(b[4+releaseLen:])}
	if m.Version != MetadataVersion {
		return nil, fmt.Errorf("kexec-metadata at %#x: version %d, want %d: %w", sub.PA, m.Version, MetadataVersion, ErrBadCompatible)
	}
	if m.PreviousRelease, err = cstring("kexec-metadata previous_release", b[4:4+releaseLen]); err != nil {
		return nil, err
	}
	if m.KexecCount == 0 {
		return nil, fmt.Errorf("kexec-metadata at %#x: kexec_count 0: %w", sub.PA, ErrBadCount)
	}
	return m, nil
}

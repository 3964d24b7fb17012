//go:build !linux

package kexec

import (
	"errors"
	"os"
)

// FileLoad is Linux only.
func FileLoad(opts LoadOptions) error { return errors.ErrUnsupported }

// Unload is Linux only.
func Unload() error { return errors.ErrUnsupported }

// Reboot is Linux only.
func Reboot() error { return errors.ErrUnsupported }

// RepackRootfs is Linux only: it needs memfd_create.
func RepackRootfs(root string, exclude []string) (*os.File, RepackStats, error) {
	return nil, RepackStats{}, errors.ErrUnsupported
}

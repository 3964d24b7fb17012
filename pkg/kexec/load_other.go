//go:build !linux

package kexec

import (
	"errors"
	"time"
)

// LoadKHO is Linux only.
func LoadKHO(opts KHOLoadOptions) (*KHOLayout, time.Duration, error) {
	return nil, 0, errors.ErrUnsupported
}

// PlanKHO is Linux only.
func PlanKHO(opts KHOLoadOptions) (*KHOLayout, error) { return nil, errors.ErrUnsupported }

//go:build tools

// The initramfs build (initramfs/build.sh) compiles these u-root commands
// with go tool u-root; importing them here keeps their modules in go.mod.
package tools

import (
	_ "github.com/u-root/u-root/cmds/core/cat"
	_ "github.com/u-root/u-root/cmds/core/dmesg"
	_ "github.com/u-root/u-root/cmds/core/gosh"
	_ "github.com/u-root/u-root/cmds/core/init"
	_ "github.com/u-root/u-root/cmds/core/ls"
	_ "github.com/u-root/u-root/cmds/core/poweroff"
)

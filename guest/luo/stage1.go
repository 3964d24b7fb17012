package main

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"github.com/kho-sim/kho-sim/pkg/liveupdate"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/guest/internal/pid1"
	kcmdline "github.com/kho-sim/kho-sim/internal/cmdline"
	"github.com/kho-sim/kho-sim/pkg/kexec"
)

// stage1 preserves the planned sessions and memfds, then kexecs into the
// same kernel and initramfs with luo_stage=2 (see nextCmdline).
func (g *guest) stage1() error {
	dev, err := liveupdate.Open()
	if err != nil {
		return err
	}
	// The sessions stay open until the kexec: closing a session fd
	// unpreserves everything in it.
	var sessions []*os.File
	for _, ps := range testPlan() {
		s, err := liveupdate.CreateSession(dev, ps.name)
		if err != nil {
			return err
		}
		sessions = append(sessions, s)
		name, err := liveupdate.SessionName(s)
		if err != nil {
			return err
		}
		g.Logf("created session %q (fd %d, GET_NAME %q)", ps.name, s.Fd(), name)
		for _, pf := range ps.files {
			if err := preserveMemfd(s, pf); err != nil {
				return fmt.Errorf("session %q: %w", ps.name, err)
			}
			g.Logf("preserved memfd token=%#x size=%d crc32=%08x in session %q", pf.token, pf.size, checksum(memfdContent(pf.token, pf.size)), ps.name)
		}
	}
	g.logOutgoingLUO()
	radix, blocks, err := snapshotRadix()
	if err != nil {
		return err
	}
	g.Logf("outgoing radix tree: %d blocks preserved, snapshot %d bytes", blocks, len(radix))

	initrd, err := g.repack(radix)
	if err != nil {
		return err
	}
	cmdline, err := nextCmdline(g.Cmdline)
	if err != nil {
		return err
	}
	g.Mark("kexec_file_load-start")
	t := time.Now()
	if err := kexec.FileLoad(kexec.LoadOptions{Kernel: g.kernel, Initrd: initrd, Cmdline: cmdline}); err != nil {
		return err
	}
	g.Logf("kexec_file_load took %.3f s", time.Since(t).Seconds())
	again, _, err := snapshotRadix()
	if err != nil {
		return err
	}
	if !bytes.Equal(again, radix) {
		return fmt.Errorf("the radix tree changed after the snapshot: the next kernel would not see the snapshot's tree")
	}
	g.Logf("radix tree unchanged by kexec_file_load")
	g.Mark("reboot-kexec")
	err = pid1.RebootKexec()
	// Only a failed kexec comes back.
	for _, s := range sessions {
		s.Close()
	}
	return err
}

// nextCmdline is stage 2's command line: stage 1's with luo_stage=2 and,
// when stage 1's asks for luo_incoming=dump, with KHO and LUO turned off
// (kho= and liveupdate= are early parameters; they are rewritten in place
// so that the line says what happens).
func nextCmdline(line string) (string, error) {
	set := map[string]string{stageParam: "2"}
	if v, _ := kcmdline.Parse(line).Lookup("luo_incoming"); v == "dump" {
		set["kho"], set["liveupdate"] = "off", "off"
	}
	return kexec.RewriteCmdline(line, set, []string{"luo_incoming"})
}

// preserveMemfd creates a memfd with the planned content and preserves it.
// The memfd's own fd may be closed afterwards: the session holds the file.
func preserveMemfd(session *os.File, pf plannedFile) error {
	fd, err := unix.MemfdCreate(fmt.Sprintf("kho-sim-%x", pf.token), 0)
	if err != nil {
		return fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "memfd")
	defer f.Close()
	if _, err := f.WriteAt(memfdContent(pf.token, pf.size), 0); err != nil {
		return fmt.Errorf("write memfd %#x: %w", pf.token, err)
	}
	return liveupdate.PreserveFD(session, fd, pf.token)
}

// logOutgoingLUO prints the outgoing luo_ser as debugfs shows it: before
// reboot(KEXEC) sessions_pa is still 0 and the FLB page count 0.
func (g *guest) logOutgoingLUO() {
	b, err := os.ReadFile("/sys/kernel/debug/kho/out/sub_fdts/LUO")
	if err != nil {
		g.Logf("outgoing LUO blob: %v", err)
		return
	}
	g.Logf("outgoing LUO blob before reboot (debugfs): %s", hex.EncodeToString(b))
}

// repack writes this program as /init, the kernel it kexecs as /bzImage
// and the radix snapshot as the next initramfs into a memfd.
func (g *guest) repack(radix []byte) (*os.File, error) {
	// This program, wherever it was started from: /init as PID 1.
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		return nil, fmt.Errorf("repack: %w", err)
	}
	kernel, err := os.ReadFile(g.kernel)
	if err != nil {
		return nil, fmt.Errorf("repack: %w", err)
	}
	f, err := pid1.MemfdInitramfs(initramfsFiles(self, kernel, radix)...)
	if err != nil {
		return nil, err
	}
	if st, err := f.Stat(); err == nil {
		g.Logf("next initramfs: %d bytes in a memfd", st.Size())
	}
	return f, nil
}

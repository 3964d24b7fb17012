// Command kexecload is a static guest program that hands a kho-sim
// handover from a stock kernel to a real KHO/LUO kernel (Linux 7.2) with
// pkg/kexec's kexec_load path.
//
// As /init (PID 1) of a minimal initramfs it runs one of two stages:
//
//	stage 1 (a stock kernel booted with memmap=SIZE$ADDR): write a minimal
//	  7.2 handover into the region through /dev/mem with pkg/kho and
//	  pkg/luo (the kho-v4 root FDT, its radix tree, the luo-v5 blob, no
//	  sessions), optionally damage it (kexecload.damage=KIND, a internal/corrupt
//	  kind), kexec_load the next kernel (/bzImage) with a SETUP_KEXEC_KHO
//	  setup_data entry, this program as its initramfs and kho=on
//	  liveupdate=on kexecload.stage=2, and reboot into it.
//	stage 2 (the KHO kernel): print where the kernel runs (KASLR puts a
//	  KHO kernel inside scratch), allocate most of RAM, then check through
//	  /dev/mem that the preserved root FDT page still holds what stage 1
//	  wrote (its CRC-32 travels on the command line) and say whether an
//	  unpreserved page of the region was reused; then reset. The kernel's
//	  own log says whether it took the handover.
//
// Run anywhere else it packs the initramfs:
//
//	kexecload pack -kernel bzImage -o initramfs.cpio
package main

import (
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/kho-sim/kho-sim/guest/internal/pid1"
	kcmdline "github.com/kho-sim/kho-sim/internal/cmdline"
	"github.com/kho-sim/kho-sim/internal/corrupt"
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/kexec"
	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/luo"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// Paths inside the initramfs.
const (
	initPath   = "init"
	kernelPath = "bzImage"
)

// Command line parameters of the guest.
const (
	paramStage  = "kexecload.stage"
	paramDamage = "kexecload.damage"
	paramRoot   = "kexecload.root"     // the root FDT's address, for stage 2
	paramCRC    = "kexecload.root_crc" // CRC-32 (IEEE) of that page as written
	paramSpare  = "kexecload.spare"    // an unpreserved page of the region stage 1 filled
)

// pressure is what stage 2 allocates and touches before it looks at the
// region: most of a 1 GiB guest, so the kernel hands out every page it
// considers free.
const pressure = 700 << 20

// sparePattern fills the unpreserved page.
const sparePattern = 0x5a

// nextCmdline is the KHO kernel's command line: KHO and LUO on (the 7.2
// kernel of scripts/luo-kernel lacks KEXEC_HANDOVER_ENABLE_DEFAULT), no
// memmap=, since the preserved pages must be RAM to it, and a panic that
// ends QEMU (-no-reboot).
const nextCmdline = "console=ttyS0 panic=-1 printk.time=1 kho=on liveupdate=on " + paramStage + "=2"

func main() {
	pid1.Program{
		Name:       "kexecload",
		Tag:        "KEXECLOAD-GUEST",
		StageParam: paramStage,
		Failed:     "FAILED",
		Pack:       pack,
		Boot:       boot,
	}.Main()
}

func pack(args []string) error {
	kernel, out, err := pid1.PackFlags(args, "usage: kexecload pack -kernel BZIMAGE -o OUT.cpio (as PID 1 it runs the guest)", nil)
	if err != nil {
		return err
	}
	return pid1.Pack(out, pid1.Source{Name: initPath, Mode: 0o755}, pid1.Source{Name: kernelPath, Path: kernel, Mode: 0o644})
}

type guest struct{ *pid1.Console }

func boot(c *pid1.Console, line kcmdline.Line) error {
	g := guest{c}
	params := line.Values()
	g.Logf("uptime %s s, command line: %s", pid1.Uptime(), c.Cmdline)
	if g.Stage == 2 {
		err := g.stage2(params)
		if err == nil {
			g.Logf("DONE")
		}
		return err
	}
	rg, found, err := physmem.MemmapFromCmdline(c.Cmdline)
	if err != nil || !found {
		return fmt.Errorf("no memmap=SIZE$ADDR region on the command line (%v)", err)
	}
	var damage corrupt.Kind
	if v := params[paramDamage]; v != "" {
		if damage, err = corrupt.ParseKind(v); err != nil {
			return err
		}
	}
	return g.stage1(rg, damage)
}

// stage1 writes the handover, loads the KHO kernel and reboots into it.
func (g *guest) stage1(rg physmem.Range, damage corrupt.Kind) error {
	region, err := physmem.OpenDevMem(physmem.DevMemSpec{Range: rg})
	if err != nil {
		return err
	}
	defer region.Close()
	root, number, err := writeHandover(region)
	if err != nil {
		return fmt.Errorf("write the handover: %w", err)
	}
	g.Logf("handover written: root FDT at %#x, liveupdate number %d", root, number)
	if damage != "" {
		what, err := corrupt.Apply(region, root, damage)
		if err != nil {
			return fmt.Errorf("damage %s: %w", damage, err)
		}
		g.Logf("damaged (%s): %s", damage, what)
	}
	files, err := pid1.ReadFiles(func(string) uint64 { return 0o755 }, initPath)
	if err != nil {
		return err
	}
	initrd, err := pid1.MemfdInitramfs(files...)
	if err != nil {
		return err
	}
	defer initrd.Close()
	rootPage, err := region.Bytes(root, physmem.PageSize)
	if err != nil {
		return err
	}
	spare := rg.End() - physmem.PageSize
	sparePage, err := region.Bytes(spare, physmem.PageSize)
	if err != nil {
		return err
	}
	for i := range sparePage {
		sparePage[i] = sparePattern
	}
	cmdline := fmt.Sprintf("%s %s=%#x %s=%#08x %s=%#x", nextCmdline, paramRoot, root, paramCRC, crc32.ChecksumIEEE(rootPage), paramSpare, spare)
	problems, err := kexec.KHOLoadPreflight("", "/"+kernelPath)
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return fmt.Errorf("preflight: %s", strings.Join(problems, "; "))
	}
	t0 := time.Now()
	layout, took, err := kexec.LoadKHO(kexec.KHOLoadOptions{
		Kernel:   "/" + kernelPath,
		Initrd:   initrd,
		Cmdline:  cmdline,
		FDT:      physmem.Range{Start: root, Size: physmem.PageSize},
		Reserved: []physmem.Range{rg},
	})
	if err != nil {
		return err
	}
	g.Logf("kexec_load took %.1f ms (LoadKHO %.1f ms): %s", float64(took.Microseconds())/1000, float64(time.Since(t0).Microseconds())/1000, layout)
	g.Logf("rebooting into the KHO kernel at uptime %s s", pid1.Uptime())
	return pid1.RebootKexec()
}

// stage2 reports where this kernel runs and what became of the region.
func (g *guest) stage2(params map[string]string) error {
	if entries, err := physmem.ReadIOMem("/proc/iomem"); err == nil {
		for _, e := range entries {
			if e.Name == "Kernel code" {
				g.Logf("kernel code at %v", e.Range)
			}
		}
	}
	root, err1 := strconv.ParseUint(params[paramRoot], 0, 64)
	crc, err2 := strconv.ParseUint(params[paramCRC], 0, 32)
	spare, err3 := strconv.ParseUint(params[paramSpare], 0, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return fmt.Errorf("stage 2 parameters: %w", err)
	}
	mem := make([]byte, pressure)
	for i := 0; i < len(mem); i += physmem.PageSize {
		mem[i] = 1
	}
	g.Logf("touched %d MiB", len(mem)>>20)
	// A kernel with STRICT_DEVMEM (a stock one) refuses RAM: nothing to
	// check there.
	devmem, err := os.Open("/dev/mem")
	if err != nil {
		g.Logf("no /dev/mem: %v", err)
		return nil
	}
	defer devmem.Close()
	page := make([]byte, physmem.PageSize)
	if _, err := devmem.ReadAt(page, int64(root)); err != nil {
		g.Logf("/dev/mem: root FDT page %#x: %v", root, err)
		return nil
	}
	if got := crc32.ChecksumIEEE(page); got != uint32(crc) {
		g.Logf("preserved root FDT page %#x CHANGED: CRC-32 %#08x, stage 1 wrote %#08x", root, got, crc)
	} else {
		g.Logf("preserved root FDT page %#x intact (CRC-32 %#08x)", root, got)
	}
	if _, err := devmem.ReadAt(page, int64(spare)); err != nil {
		g.Logf("/dev/mem: page %#x: %v", spare, err)
		return nil
	}
	reused := false
	for _, b := range page {
		reused = reused || b != sparePattern
	}
	g.Logf("unpreserved page %#x of the region reused: %v", spare, reused)
	runtime.KeepAlive(mem)
	return nil
}

// writeHandover writes a minimal 7.2 handover into the region as a cold
// boot's kho_init and luo do: the kho-v4 root FDT with its radix tree and
// kexec-metadata, and the luo-v5 blob (no sessions, no FLBs). It returns
// the root FDT's address and the liveupdate number the next kernel must
// report.
func writeHandover(region *physmem.Region) (root, number uint64, err error) {
	out, err := kho.NewOutgoingWith(physmem.NewAllocator(region), kho.Options{Generation: kernel.V72, Release: release()})
	if err != nil {
		return 0, 0, err
	}
	core := luo.New(memory{out}, luo.Options{Generation: kernel.V72})
	pa, err := core.SetupOutgoing()
	if err != nil {
		return 0, 0, err
	}
	if err := out.AddBlob(luo.FDTKHOEntryName, pa, luo.SerSize); err != nil {
		return 0, 0, err
	}
	if err := core.Serialize(); err != nil {
		return 0, 0, err
	}
	if root, err = out.Finalize(); err != nil {
		return 0, 0, err
	}
	_, number = core.LiveupdateNumber()
	return root, number, nil
}

// memory is luo.Memory on an outgoing KHO with nothing incoming.
type memory struct{ out *kho.Outgoing }

func (m memory) AllocPreserve(size uint64) (uint64, []byte, error) { return m.out.AllocPreserve(size) }
func (m memory) UnpreserveFree(pa uint64) error                    { return m.out.UnpreserveFree(pa) }
func (m memory) Map(pa, size uint64) ([]byte, error) {
	return nil, fmt.Errorf("cold boot: no incoming handover to map %#x+%#x", pa, size)
}

// release is the running kernel's release, the kexec-metadata's
// previous_release.
func release() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

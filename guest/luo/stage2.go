package main

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/kho-sim/kho-sim/pkg/liveupdate"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/luo"
	"github.com/kho-sim/kho-sim/pkg/memfd"
	"github.com/kho-sim/kho-sim/pkg/physmem"
	"golang.org/x/sys/unix"
)

const setupDataDir = "/sys/kernel/boot_params/setup_data"

// stage2 dumps the incoming handover, then retrieves and checks what
// stage 1 preserved; with LUO off (dumpOnly) the dump is the test.
func (g *guest) stage2() error {
	setup, err := findKHOSetup()
	if err != nil {
		return err
	}
	g.Logf("KHO setup_data: fdt %#x (%d bytes), scratch array %#x (%d bytes)", setup.FDTAddr, setup.FDTSize, setup.ScratchAddr, setup.ScratchSize)
	if g.dumpOnly {
		// LUO is off: nothing freed the blob, so the decode must succeed.
		if err := g.dump(setup); err != nil {
			return fmt.Errorf("handover decode through /dev/mem with LUO off: %w", err)
		}
		g.Logf("handover decode through /dev/mem: ok (LUO off: dump only)")
		g.Mark("dumped")
		if _, err := os.Stat(liveupdate.Device); err == nil {
			return fmt.Errorf("%s exists with liveupdate=off", liveupdate.Device)
		}
		g.Logf("TEST PASSED")
		return nil
	}
	// Dump before /dev/liveupdate is opened: retrieving and finishing
	// sessions frees their blocks. The decode is expected to fail at the
	// LUO blob, which this kernel freed (and reused) before /init ran; the
	// verdict is about what the kernel gives back.
	if err := g.dump(setup); err != nil {
		g.Logf("handover decode through /dev/mem: %v", err)
	} else {
		g.Logf("handover decode through /dev/mem: ok")
	}
	g.Mark("dumped")
	if err := g.retrieve(); err != nil {
		return err
	}
	g.Logf("TEST PASSED")
	return nil
}

// findKHOSetup finds the SETUP_KEXEC_KHO entry among the setup_data that
// kexec_file_load passed (sysfs lists them, with type as "0x%x").
func findKHOSetup() (kho.Setup, error) {
	dirs, err := os.ReadDir(setupDataDir)
	if err != nil {
		return kho.Setup{}, fmt.Errorf("list setup_data: %w", err)
	}
	want := fmt.Sprintf("%#x", kho.SetupKHO)
	for _, d := range dirs {
		typ, err := os.ReadFile(filepath.Join(setupDataDir, d.Name(), "type"))
		if err != nil || strings.TrimSpace(string(typ)) != want {
			continue
		}
		data, err := os.ReadFile(filepath.Join(setupDataDir, d.Name(), "data"))
		if err != nil {
			return kho.Setup{}, fmt.Errorf("read setup_data %s: %w", d.Name(), err)
		}
		return kho.ParseSetup(data)
	}
	return kho.Setup{}, fmt.Errorf("no setup_data of type %s (SETUP_KEXEC_KHO) in %s", want, setupDataDir)
}

// dump decodes the handover through /dev/mem and prints every page the
// decode read, plus the scratch array and each memfd's serialized state.
// Kernel messages are held back meanwhile so they cannot split a line.
func (g *guest) dump(setup kho.Setup) error {
	mem, err := openDevMem()
	if err != nil {
		return err
	}
	defer mem.f.Close()
	snap, err := loadSnapshot()
	if err != nil {
		return err
	}
	restore := quietConsole()
	defer restore()

	ov := &overlay{snap: snap, mem: mem, used: make(map[uint64]bool)}
	// Read goes on past what is wrong, so every page it looked at is
	// dumped even when the handover is refused.
	h, decodeErr := luo.Read(ov, setup.FDTAddr)
	extra := map[uint64]bool{setup.FDTAddr &^ (physmem.PageSize - 1): true}
	if setup.ScratchSize > 0 && setup.ScratchSize <= physmem.PageSize {
		for p := setup.ScratchAddr &^ (physmem.PageSize - 1); p < setup.ScratchAddr+setup.ScratchSize; p += physmem.PageSize {
			extra[p] = true
		}
	}
	if h != nil && h.Sessions != nil {
		for _, s := range h.Sessions.Sessions {
			for _, f := range s.Files {
				extra[f.Data&^(physmem.PageSize-1)] = true
				if f.Compatible != memfd.Compatible {
					continue
				}
				// Every block of a memfd-v2 file: its folio array, the
				// array's chunks and the folios, so the dump decodes too.
				m, err := memfd.Read(ov, f.Data, memfd.Options{Preserved: h.In.BlockAt})
				if err != nil {
					g.Logf("dump: memfd token %#x: %v", f.Token, err)
					continue
				}
				for _, b := range m.Blocks() {
					for p := b.PA; p < b.End(); p += physmem.PageSize {
						extra[p] = true
					}
				}
			}
		}
	}
	for p := range mem.touched {
		extra[p] = true
	}
	pages := make([]uint64, 0, len(extra)+len(ov.used))
	for p := range extra {
		if !ov.used[p] {
			pages = append(pages, p)
		}
	}
	reused := 0
	for p := range ov.used {
		pages = append(pages, p)
		if now, err := mem.page(p); err == nil && !bytes.Equal(now, snap.Page(p)) {
			reused++
		}
	}
	sort.Slice(pages, func(i, j int) bool { return pages[i] < pages[j] })
	fmt.Println(kho.FormatSetupLine(setup))
	for _, p := range pages {
		b := snap.Page(p)
		if !ov.used[p] {
			if b, err = mem.page(p); err != nil {
				g.Logf("dump: %v", err)
				continue
			}
		}
		fmt.Println(kho.FormatDumpLine(p, b))
	}
	g.Logf("dumped %d pages; %d radix nodes from stage 1's snapshot, %d of them already reused by this kernel", len(pages), len(ov.used), reused)
	if decodeErr != nil {
		return decodeErr
	}
	g.describe(h)
	return nil
}

// describe prints the decoded handover in words.
func (g *guest) describe(h *luo.Handover) {
	in := h.In
	var pages uint64
	for _, b := range in.Blocks() {
		pages += 1 << b.Order
	}
	mapPA, _ := in.Root().Root.U64(kho.PropMemoryMap)
	g.Logf("root FDT %#x (%d bytes), memory map %#x: %d blocks (%d pages) in %d radix nodes", in.RootPA(), in.RootSize(), mapPA, len(in.Blocks()), pages, len(in.MapPages()))
	for _, name := range in.SubtreeNames() {
		pa, size, _ := in.SubtreeBlob(name)
		g.Logf("  child %q: preserved-data %#x blob-size %d", name, pa, size)
	}
	if m := h.KexecMetadata; m != nil {
		g.Logf("kexec-metadata: version %d previous_release %q kexec_count %d", m.Version, m.PreviousRelease, m.KexecCount)
	}
	if !h.Readable {
		g.Logf("no LUO child")
		return
	}
	g.Logf("LUO %#x: liveupdate_num %d sessions_pa %#x flbs_pa %#x", h.Ser.PA, h.LiveupdateNumber, h.SessionsPA, h.FLBsPA)
	if h.Sessions != nil {
		for _, s := range h.Sessions.Sessions {
			g.Logf("  session %q: %d files at %#x", s.Name, s.Count, s.FilesPA)
			for _, f := range s.Files {
				g.Logf("    file %q token %#x data %#x", f.Compatible, f.Token, f.Data)
			}
		}
	}
	if t := h.FLB; t != nil {
		g.Logf("FLB page %#x: pgcnt %d, %d entries", t.PA, t.PageCount, len(t.Entries))
		for _, f := range t.Entries {
			g.Logf("  FLB %q data %#x count %d", f.Name, f.Data, f.Count)
		}
	}
}

// quietConsole holds kernel messages back from the console (syslog
// SYSLOG_ACTION_CONSOLE_OFF) so they cannot split a dump line, and returns
// a function that lets them through again (SYSLOG_ACTION_CONSOLE_ON).
func quietConsole() func() {
	const consoleOff, consoleOn = 6, 7
	if _, err := unix.Klogctl(consoleOff, nil); err != nil {
		return func() {}
	}
	return func() { unix.Klogctl(consoleOn, nil) }
}

// retrieve gets every planned session and memfd back, checks the content
// and finishes the sessions.
func (g *guest) retrieve() error {
	dev, err := liveupdate.Open()
	if err != nil {
		return err
	}
	defer dev.Close()
	var errs []error
	for _, ps := range testPlan() {
		if err := g.retrieveSession(dev, ps); err != nil {
			errs = append(errs, fmt.Errorf("session %q: %w", ps.name, err))
		}
	}
	return errors.Join(errs...)
}

func (g *guest) retrieveSession(dev *os.File, ps plannedSession) error {
	s, err := liveupdate.RetrieveSession(dev, ps.name)
	if err != nil {
		return err
	}
	defer s.Close()
	name, err := liveupdate.SessionName(s)
	if err != nil {
		return err
	}
	if name != ps.name {
		return fmt.Errorf("GET_NAME says %q", name)
	}
	for _, pf := range ps.files {
		f, err := liveupdate.RetrieveFD(s, pf.token)
		if err != nil {
			return err
		}
		got, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<30))
		f.Close()
		if err != nil {
			return fmt.Errorf("read memfd %#x: %w", pf.token, err)
		}
		want := memfdContent(pf.token, pf.size)
		if !bytes.Equal(got, want) {
			return fmt.Errorf("memfd %#x: %d bytes crc32 %08x, want %d bytes crc32 %08x", pf.token, len(got), checksum(got), len(want), checksum(want))
		}
		g.Logf("retrieved memfd token=%#x size=%d crc32=%08x: content intact", pf.token, len(got), checksum(got))
	}
	if err := liveupdate.FinishSession(s); err != nil {
		return err
	}
	g.Logf("finished session %q", ps.name)
	return nil
}

// Command luo-extract turns a guest RAM image taken at the moment of a
// Linux 7.2 kexec into the test data of testdata/real-7.2, and compares it
// with what the guest itself could still read through /dev/mem after the
// kexec. scripts/luo-kernel/capture.sh runs it.
//
//	luo-extract -mem ram.bin -console console.log -o handover.txt [-diff diff.txt]
//
// console.log is the serial log of the run: its KHOSETUP line says where
// the root FDT is, its KHODUMP lines are the guest's own dump. The image is
// read strictly with luo.Read; handover.txt receives the KHOSETUP
// line and every page of the handover (the structures, the radix nodes, the
// scratch array, each file's serialized state and, for a memfd-v2 file
// decoded strictly with pkg/memfd, its folio array, chunks and folios),
// and the comparison says
// which of the guest's pages differ from the image and what they hold.
// The scratch array is a kexec segment, not yet in place when the image is
// taken, so its page comes from the guest's dump.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/luo"
	"github.com/kho-sim/kho-sim/pkg/memfd"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "luo-extract:", err)
		os.Exit(1)
	}
}

func run() error {
	memPath := flag.String("mem", "", "RAM image (physical address 0 at offset 0)")
	consolePath := flag.String("console", "", "serial console log with the guest's KHOSETUP and KHODUMP lines")
	out := flag.String("o", "", "handover dump to write")
	diffPath := flag.String("diff", "", "comparison report to write (default: stderr only)")
	flag.Parse()
	if *memPath == "" || *consolePath == "" || *out == "" {
		return errors.New("usage: luo-extract -mem RAM -console LOG -o OUT [-diff REPORT]")
	}
	guest, err := kho.ReadDumpFile(*consolePath)
	if err != nil {
		return err
	}
	if guest.Setup == nil {
		return fmt.Errorf("%s: no KHOSETUP line", *consolePath)
	}
	setup := *guest.Setup
	st, err := os.Stat(*memPath)
	if err != nil {
		return err
	}
	ram, err := physmem.OpenFile(*memPath, 0, uint64(st.Size()))
	if err != nil {
		return err
	}
	defer ram.Close()

	h, err := luo.Read(ram, setup.FDTAddr)
	if err != nil {
		return fmt.Errorf("read the RAM image: %w", err)
	}
	role, err := roles(ram, h, setup)
	if err != nil {
		return err
	}
	pages := make([]uint64, 0, len(role))
	for p := range role {
		pages = append(pages, p)
	}
	sort.Slice(pages, func(i, j int) bool { return pages[i] < pages[j] })

	// The image precedes machine_kexec, which copies the kexec segments
	// (kernel, initrd, the scratch array) into the scratch areas: those
	// pages are taken from the guest, which read them after the kexec.
	scratch := setup.ScratchAddr &^ (physmem.PageSize - 1)
	var dump bytes.Buffer
	fmt.Fprintln(&dump, kho.FormatSetupLine(setup))
	for _, p := range pages {
		b, err := ram.Bytes(p, physmem.PageSize)
		if err != nil {
			return err
		}
		if p == scratch {
			if b = guest.Pages.Page(p); b == nil {
				continue
			}
		}
		fmt.Fprintln(&dump, kho.FormatDumpLine(p, b))
	}
	if err := os.WriteFile(*out, dump.Bytes(), 0o644); err != nil {
		return err
	}

	var report bytes.Buffer
	fmt.Fprintf(&report, "pages of the handover in the RAM image taken at the kexec: %d\n", len(pages))
	fmt.Fprintf(&report, "pages the guest printed after the kexec: %d\n", len(guest.Pages.Addresses()))
	same, differ := 0, 0
	for _, p := range guest.Pages.Addresses() {
		b, err := ram.Bytes(p, physmem.PageSize)
		if err != nil {
			return err
		}
		what := role[p]
		if what == "" {
			what = "not part of the decoded handover"
		}
		if p == scratch {
			what += ": a kexec segment, copied into place after the image was taken"
		}
		if bytes.Equal(b, guest.Pages.Page(p)) {
			same++
			continue
		}
		differ++
		fmt.Fprintf(&report, "differs: %#x (%s)\n", p, what)
	}
	for _, p := range pages {
		if guest.Pages.Page(p) == nil {
			fmt.Fprintf(&report, "not printed by the guest: %#x (%s)\n", p, role[p])
		}
	}
	fmt.Fprintf(&report, "identical: %d, different: %d\n", same, differ)
	os.Stderr.Write(report.Bytes())
	if *diffPath != "" {
		return os.WriteFile(*diffPath, report.Bytes(), 0o644)
	}
	return nil
}

// roles names what each page of the handover holds, the pages of every
// memfd-v2 file (folio array, its chunks, the folios) included.
func roles(mem kho.Memory, h *luo.Handover, setup kho.Setup) (map[uint64]string, error) {
	role := make(map[uint64]string)
	add := func(pa uint64, what string) {
		p := pa &^ (physmem.PageSize - 1)
		if role[p] == "" {
			role[p] = what
		} else if !strings.Contains(role[p], what) {
			role[p] += ", " + what
		}
	}
	for _, s := range h.Structures() {
		for p := s.PA &^ (physmem.PageSize - 1); p < s.PA+s.Size; p += physmem.PageSize {
			add(p, s.What)
		}
	}
	if h.Ser != nil {
		add(h.Ser.PA, "LUO blob (freed by the next kernel's luo_early_startup)")
	}
	if h.Sessions != nil {
		for _, s := range h.Sessions.Sessions {
			for _, f := range s.Files {
				add(f.Data, fmt.Sprintf("%s state of token %#x", f.Compatible, f.Token))
				if f.Compatible != memfd.Compatible {
					continue
				}
				if err := memfdRoles(mem, h.In, f.Data, f.Token, add); err != nil {
					return nil, err
				}
			}
		}
	}
	for _, pa := range h.In.MapPages() {
		add(pa, "radix node (not preserved)")
	}
	if setup.ScratchSize > 0 && setup.ScratchSize <= physmem.PageSize {
		add(setup.ScratchAddr, "scratch array")
	}
	return role, nil
}

// memfdRoles decodes the memfd-v2 state at pa strictly and names its pages.
func memfdRoles(mem kho.Memory, in *kho.Incoming, pa, token uint64, add func(uint64, string)) error {
	f, err := memfd.Read(mem, pa, memfd.Options{Preserved: in.BlockAt})
	if err != nil {
		return fmt.Errorf("memfd token %#x: %w", token, err)
	}
	if a := f.Area; a != nil {
		for i, c := range a.Chunks {
			add(c, fmt.Sprintf("memfd token %#x vmalloc chunk %d", token, i))
		}
		for i, r := range a.Runs {
			for j := uint64(0); j < 1<<a.Order; j++ {
				add(r+j*physmem.PageSize, fmt.Sprintf("memfd token %#x folio array page %d", token, i<<a.Order+int(j)))
			}
		}
	}
	for _, fo := range f.Folios {
		for j := uint64(0); j < 1<<fo.Order; j++ {
			add(fo.PA()+j*physmem.PageSize, fmt.Sprintf("memfd token %#x folio index %d", token, fo.Index+j))
		}
	}
	return nil
}

// Command devmembench measures payload verification (internal/payload's
// CRC-32) through a /dev/mem mapping of the reserved region beside a copy
// out of the same mapping, and the same two in process on heap memory, in
// each cache mode kho-sim can ask for: write-back (kho-sim's default) and
// uncached (O_SYNC). For each mode it prints what the kernel granted, from
// /sys/kernel/debug/x86/pat_memtype_list (debugfs is mounted if it is not).
// scripts/bench/devmem.sh runs it as the uinit of a QEMU guest booted with
// memmap=.
//
//	devmembench [-region SIZE@ADDR] [-rounds N] [-poweroff]
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/internal/payload"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

func main() {
	region := flag.String("region", "", "reserved region SIZE@ADDR (default: memmap=SIZE$ADDR on /proc/cmdline)")
	rounds := flag.Int("rounds", 9, "interleaved rounds per size; the median is printed")
	poweroff := flag.Bool("poweroff", false, "power the machine off when done (as a guest's uinit)")
	flag.Parse()
	err := run(*region, *rounds)
	if err != nil {
		fmt.Fprintf(os.Stderr, "devmembench: %v\n", err)
	}
	if *poweroff {
		unix.Sync()
		time.Sleep(100 * time.Millisecond) // let the console drain
		_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	}
	if err != nil {
		os.Exit(1)
	}
}

func run(region string, rounds int) error {
	var rg physmem.Range
	var err error
	if region != "" {
		rg, err = physmem.ParseRegion(region)
	} else {
		var raw []byte
		if raw, err = os.ReadFile("/proc/cmdline"); err == nil {
			var found bool
			rg, found, err = physmem.MemmapFromCmdline(strings.TrimSpace(string(raw)))
			if err == nil && !found {
				err = errors.New("no memmap= on the command line; pass -region")
			}
		}
	}
	if err != nil {
		return err
	}
	if _, err := os.Stat(physmem.PATMemtypeList); err != nil {
		// Mounting debugfs where it belongs is harmless in a bench guest.
		_ = unix.Mount("debugfs", "/sys/kernel/debug", "debugfs", 0, "")
	}
	fmt.Printf("# devmembench: region %v, %d rounds, median GB/s (10^9 bytes/s)\n", rg, rounds)
	fmt.Println("| mapping | granted (PAT) | size | CRC-32 GB/s | copy GB/s | CRC-32 / copy |")
	fmt.Println("|---|---|---:|---:|---:|---:|")
	for _, uncached := range []bool{false, true} {
		if err := bench(rg, uncached, rounds); err != nil {
			return err
		}
	}
	return nil
}

func bench(rg physmem.Range, uncached bool, rounds int) error {
	r, err := physmem.OpenDevMem(physmem.DevMemSpec{Range: rg, Uncached: uncached})
	if err != nil {
		return err
	}
	defer r.Close()
	name := "/dev/mem write-back"
	if uncached {
		name = "/dev/mem O_SYNC"
	}
	granted := "unknown (no " + physmem.PATMemtypeList + ")"
	if f, err := os.Open(physmem.PATMemtypeList); err == nil {
		m, err := physmem.ParsePATMemtypes(f, rg)
		f.Close()
		if err == nil {
			var modes []string
			for _, e := range m {
				modes = append(modes, e.Mode)
			}
			granted = strings.Join(modes, ", ")
		}
	}
	mem, err := r.Bytes(rg.Start, rg.Size)
	if err != nil {
		return err
	}
	payload.Fill(mem, 1)
	for size := uint64(1 << 20); size <= rg.Size; size *= 4 {
		buf := make([]byte, size)
		crc, cp := measure(mem[:size], buf, rounds)
		row(name, granted, size, crc, cp)
		if !uncached {
			// The same two in process, on heap memory the Go runtime maps.
			src := make([]byte, size)
			payload.Fill(src, 1)
			crc, cp := measure(src, buf, rounds)
			row("in process (heap)", "write-back", size, crc, cp)
		}
	}
	return nil
}

// measure times the CRC-32 of src and a copy of src into dst, interleaved
// round by round so both see the same machine, and returns each median.
func measure(src, dst []byte, rounds int) (crc, cp time.Duration) {
	var c, p []time.Duration
	for range rounds {
		t0 := time.Now()
		payload.Checksum(src)
		t1 := time.Now()
		copy(dst, src)
		t2 := time.Now()
		c, p = append(c, t1.Sub(t0)), append(p, t2.Sub(t1))
	}
	slices.Sort(c)
	slices.Sort(p)
	return c[len(c)/2], p[len(p)/2]
}

func row(name, granted string, size uint64, crc, cp time.Duration) {
	gbs := func(d time.Duration) float64 { return float64(size) / d.Seconds() / 1e9 }
	fmt.Printf("| %s | %s | %d MiB | %.2f | %.2f | %.0f%% |\n", name, granted, size>>20, gbs(crc), gbs(cp), 100*cp.Seconds()/crc.Seconds())
}

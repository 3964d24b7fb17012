package main

import (
	"fmt"
	"io"

	"github.com/kho-sim/kho-sim/internal/sim"
	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/kho"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

func runSim(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("sim", "sim --image FILE [--base ADDR] [--size SIZE] [--scenario NAME|FILE] [--hops N] [--fix-finish-before-retrieve] [--abi GEN[,GEN...]] [--read-abi GEN] [--fdt ADDR --boot N] [--keep-handover] [--ram SIZE@ADDR,...] | sim --list", stderr)
	im := addImageFlags(fs, "file standing in for physical memory (created if missing)", "16M", "region size (page aligned)")
	name := fs.String("scenario", "default", "built-in scenario name or scenario file")
	hops := fs.Int("hops", 2, "kexec hops to simulate (boots = hops + 1)")
	fix := fs.Bool("fix-finish-before-retrieve", false, "run the model with the 7.0 finish-before-retrieve flaw fixed")
	list := fs.Bool("list", false, "list the built-in scenarios and exit")
	root := fs.String("fdt", "", "resume from a handover already in the image: the KHO root FDT address (kho_sim.fdt=)")
	bootN := fs.Int("boot", 2, "with --fdt: the number of the boot that reads it (kho_sim.boot=)")
	damage := fs.String("corrupt", "", "damage the handover that boot N writes, KIND[@N] (N defaults to 1); --corrupt list shows the kinds")
	abiFlag := fs.String("abi", "7.0", "handover generation each boot writes and reads: 7.0, luo-v2 or 7.2; a comma-separated list gives boot n entry (n-1) mod len")
	keep := fs.Bool("keep-handover", false, "the last boot also hands over, as if it kexec'd into a boot that never runs: the image ends with a complete handover (its kho_sim.fdt= is printed) for inspect --image or other tools")
	ramFlag := fs.String("ram", "", "the simulated kernels' RAM besides the region, SIZE@ADDR[,SIZE@ADDR...] (a guest's usable e820 ranges): a handover pointer out of the region then lands in RAM, whose content decides, or beyond it, where the kernel faults; unset, both are \"memory the handover does not hold\"")
	readABIFlag := fs.String("read-abi", "", "generation every incoming side expects instead of its own (a hop between kernel generations)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *list {
		return listScenarios(stdout)
	}
	if *damage == "list" {
		return listCorruptions(stdout)
	}
	dmg, err := parseDamage(*damage)
	if err != nil {
		return err
	}
	if *im.image == "" {
		return usageError{"--image FILE is required"}
	}
	if *hops < 0 || *hops > 1000 {
		return usageError{fmt.Sprintf("--hops %d: want 0 to 1000", *hops)}
	}
	sc, err := loadScenario(*name)
	if err != nil {
		return err
	}
	abis, err := kernel.ParseList(*abiFlag)
	if err != nil {
		return usageError{fmt.Sprintf("--abi: %v", err)}
	}
	var readABI kernel.Generation
	if *readABIFlag != "" {
		if readABI, err = kernel.Parse(*readABIFlag); err != nil {
			return usageError{fmt.Sprintf("--read-abi: %v", err)}
		}
	}
	ram, err := parseRanges("--ram", *ramFlag)
	if err != nil {
		return err
	}
	rg, err := regionFlags(*im.base, *im.size)
	if err != nil {
		return err
	}

	boots := *hops + 1
	in := sim.Handover{Boot: 1}
	if *root != "" {
		pa, err := parseAddress("--fdt", *root)
		if err != nil {
			return err
		}
		if *bootN < 2 || *bootN > boots {
			return usageError{fmt.Sprintf("--boot %d: want 2 to %d (hops + 1)", *bootN, boots)}
		}
		in = sim.Handover{RootPA: pa, Boot: *bootN}
	}
	failed := 0
	for in.Boot <= boots {
		// Each boot maps the file afresh and builds every object anew: only
		// the bytes and the handover parameters cross the simulated reboot.
		region, err := physmem.OpenFile(*im.image, rg.Start, rg.Size)
		if err != nil {
			return err
		}
		cfg := sim.Config{Region: region, Scenario: sc, In: in, Boots: boots, Fix: *fix, Out: stdout,
			ABI: abis[(in.Boot-1)%len(abis)], ReadABI: readABI, KeepHandover: *keep, RAM: kho.NextRAM(ram)}
		if dmg.kind != "" && dmg.boot == in.Boot {
			cfg.Damage = dmg.apply
		}
		out := sim.Run(cfg)
		if err := region.Close(); err != nil {
			return err
		}
		if !out.OK {
			failed++
		}
		if out.Last {
			break
		}
		in = out.Next
	}
	if failed > 0 {
		return fmt.Errorf("%d boot(s) failed; the KTAP on stdout says why", failed)
	}
	return nil
}

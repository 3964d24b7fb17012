// Command benchphases turns the serial logs of kho-sim's QEMU chains into a
// per-phase performance table that compares the two loaders of the next
// kernel: kho-sim's own kexec_file_load(2) and Debian's kexec-tools
// (kho_sim.loaders=kho-sim,kexec-tools alternates them within one chain).
//
// Usage: phases [-wall S,S,...] [-machine TEXT] LOG...
//
// Every "# phase NAME TIME ms" diagnostic of a boot that passed is one
// sample. A phase measured on the way out of a boot (steps, serialize,
// start to load, initramfs repack, kexec_file_load) belongs to the loader
// that boot used; one measured on the way in (boot to start, region map,
// blackout, handover read) belongs to the loader that booted it, i.e. the
// previous boot's. The first boot's way in is QEMU's cold boot and belongs
// to neither. A boot's loader is read from its kexec_file_load phase, which
// kexec-tools' path names "kexec_file_load (kexec-tools)".
//
// The output is a Markdown table: median, min-max and count per loader and
// the ratio of the medians, kho-sim / kexec-tools, then the median wall
// time of a whole run, then kho-sim's userspace share of a hop (see Hop):
// (start to load + initramfs repack) / (those + kexec_file_load + the next
// boot's blackout), median and range over every hop. Exit status: 0, 1 when no sample was found, 2 for a
// usage or read error.
package main

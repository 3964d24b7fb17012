// Package luo models the parts of Linux 7.0's Live Update Orchestrator that
// File-Lifecycle-Bound objects depend on: file handlers, sessions and their
// files (kernel/liveupdate/luo_file.c, luo_session.c), the LUO FDT, the
// reboot-time serialization and the incoming deserialization (luo_core.c),
// as of commit cab056f2 which introduced FLBs. pkg/flb holds the FLB logic;
// a Core wires it to the session layer as the kernel does.
//
// A Core is one simulated boot. It allocates and maps memory only through a
// Memory (KHO's kho_alloc_preserve, kho_unpreserve_free and phys_to_virt of
// preserved memory). Everything read back from a previous kernel is treated
// as untrusted: where 7.0 would read outside a block or panic, the model
// returns a *BootError saying what the kernel would do.
//
// The image layer comes in three generations (Options.Generation): 7.0's LUO
// FDT with luo-session and luo-flb nodes ("luo-v1", the default); the
// "luo-v2" step, an FDT whose luo-abi-header points at struct luo_ser; and
// 7.2's raw "luo-v5" struct luo_ser with sessions and files in linked
// one-page blocks (kho_block.c). The FLB page and the FLB model are the same
// in all; a Core reads only its own generation and refuses another one as
// that kernel would (a panic, for every pair).
//
// Decode reads the incoming LUO state of any generation into a value
// (Handover: generation, liveupdate number, FLB table, sessions, files)
// with what is wrong with it as kernel.Findings, worded for the handover's
// kernel; inspect, the simulator's incoming checks, corrupt and the guest
// (through Read, the strict whole-handover reader) all read through it.
//
// Failures a 7.0 kernel only logs (WARN_ON, pr_warn) are kept in
// Core.Warnings. Not modelled: ioctl plumbing, exclusive opening of
// /dev/liveupdate, file references (fget/fput), kho_restore_free and
// kho_finalize.
package luo

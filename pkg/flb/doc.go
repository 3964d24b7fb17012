// Package flb models Linux 7.0's File-Lifecycle-Bound (FLB) global state,
// kernel/liveupdate/luo_flb.c as merged by commit cab056f2 ("liveupdate:
// luo_flb: introduce File-Lifecycle-Bound global state").
//
// The kernel's single luo_flb_global becomes a Kernel value, created fresh for
// each simulated boot with New. Every kernel function the seed exports has one
// method of the same name here (RegisterFLB for liveupdate_register_flb,
// FilePreserve for luo_flb_file_preserve, ...); each doc comment names the
// function it models and says where the model differs.
//
// The seed's flaws are reproduced by default, because kho-sim exists to show
// them on a real handover:
//
//   - finish before retrieve: the incoming count is loaded only by retrieve,
//     so finishing a file before any GetIncoming takes the count from 0 to -1
//     and .finish never runs (Options.FixFinishBeforeRetrieve repairs it);
//   - the incoming header count is trusted: a lookup that would walk past the
//     FLB page returns ErrReadPastPage instead of reading foreign memory;
//   - names from the previous kernel are compared with strcmp, which stops
//     only at a difference or a NUL;
//   - a 48-byte compatible has no NUL: it never matches another name,
//     serializes truncated to 47 bytes, and is then never found again.
//
// Each WARN_ON of the seed is reported as a Warning through Options.Warn at
// the moment the kernel would print it (and counted, Kernel.WarnCount); the
// call then goes on as the kernel's does. Where the kernel would dereference
// NULL (an FLB without .retrieve whose entry get_incoming finds) the model
// returns ErrOops, and ErrDeadlock for later calls that would wait on the
// lock the dead task held.
//
// The FLB page layout (luo_flb_header_ser, luo_flb_ser) lives here too, with
// bounds-checked readers that a strict checker can reuse.
package flb

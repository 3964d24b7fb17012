// Package scenario defines kho-sim's scenario files: a small YAML format
// that names FLBs, file handlers and their dependencies, sessions and files
// with payload sizes, and what each simulated boot does. The built-in
// scenarios are such files, embedded in the binary.
//
// A scenario file looks like this:
//
//	name: sharing
//	summary: two handlers share an FLB across several files in two sessions
//	flbs:
//	  - {name: iommu-core, payload: 64KiB}
//	handlers:
//	  - {name: vfio-v1, flbs: [iommu-core]}
//	sessions:
//	  - name: vm-1
//	    files:
//	      - {token: 1, handler: vfio-v1, payload: 512}
//	boots:
//	  - steps: [preserve-all]
//	  - steps: [retrieve-all, get-incoming-all, finish-all]
//
// Each boot registers the declared handlers and FLBs (as module init does),
// runs its steps in order, then ends as its "end" says: "kexec" (the default
// while boots remain), "cold" (a reboot without handover), or "kexec-fails"
// (the load fails after preserve, so the abort path runs and the run stops).
// A scenario run for more boots than it lists repeats its last boot, so a
// last boot that preserves again makes a chain of any length.
//
// A step is an operation name, alone or with an argument or a map of
// arguments; any step may say which errno it must fail with:
//
//   - preserve: vm-1/1
//   - register-flb: {handler: vfio-v1, flb: extra, expect: EEXIST}
//   - fault: {flb: iommu-core, op: preserve, nth: 1, errno: ENOMEM}
//
// Operations (S/T is SESSION/TOKEN):
//
//	preserve-all         create every session and preserve every file
//	retrieve-all         retrieve every incoming session and its files
//	get-incoming-all     liveupdate_flb_get_incoming for every handed-over FLB
//	finish-all           finish every retrieved session
//	abort                close every outgoing session (a cancelled reboot)
//	create-session S     retrieve-session S     finish S     close S
//	preserve S/T         retrieve-file S/T
//	get-incoming FLB     get-outgoing FLB
//	register-handler H   register-flb {handler, flb}   unregister-flb {handler, flb}
//	fault {flb|handler, op, nth, errno}   make the nth call of op fail
//	churn {parallel, rounds}   goroutines each create, fill and close their
//	                     sessions, rounds times, all at once
//
// preserve-all, retrieve-all and finish-all take {parallel: N} to spread
// the sessions over N goroutines. A session with "copies: N" stands for N
// sessions NAME-0 .. NAME-(N-1); a file with "count: N" for N files with
// consecutive tokens.
//
// Fault ops are preserve and retrieve (of an FLB) and file-preserve,
// file-retrieve and can-finish (of a handler).
package scenario

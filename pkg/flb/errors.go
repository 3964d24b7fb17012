package flb

import "errors"

// ErrReadPastPage reports that Linux 7.0 would read beyond the FLB page while
// walking the incoming table: its header count and its names come from the
// previous kernel unchecked. The model stops instead of reading.
var ErrReadPastPage = errors.New("the 7.0 kernel would read past the FLB page")

// errNotSetUp reports a call the kernel could not reach: luo_flb_serialize
// without luo_flb_setup_outgoing would dereference a NULL header.
var errNotSetUp = errors.New("FLB page not set up")

// ErrOops reports a call on which Linux 7.0 dereferences a NULL pointer: the
// kernel oopses and kills the calling task, with every lock it held still
// held. The model returns instead.
var ErrOops = errors.New("the 7.0 kernel dereferences a NULL pointer: oops")

// ErrDeadlock reports a call that Linux 7.0 never returns from: it waits for
// a lock that a task which oopsed (ErrOops) still holds.
var ErrDeadlock = errors.New("the 7.0 kernel blocks forever on a lock held by a task that oopsed")

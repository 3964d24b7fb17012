package flb

import "errors"

// ErrReadPastPage reports that Linux 7.0 would read beyond the FLB page while
// walking the incoming table: its header count and its names come from the
// previous kernel unchecked. The model stops instead of reading.
var ErrReadPastPage = errors.New("the 7.0 kernel would read past the FLB page")

// errNotSetUp reports a call the kernel could not reach: luo_flb_serialize
// without luo_flb_setup_outgoing would dereference a NULL header.
var errNotSetUp = errors.New("FLB page not set up")

package flb

import "fmt"

// Site names one WARN_ON of luo_flb.c by its function and condition, as
// the kernel's "WARNING: ... at kernel/liveupdate/luo_flb.c:LINE FUNCTION"
// line locates it.
type Site string

// The WARN_ONs of luo_flb.c, each where the kernel evaluates it.
const (
	// WarnMissingOp: liveupdate_register_flb, an FLB without one of its
	// four callbacks; the call then returns EINVAL.
	WarnMissingOp Site = "liveupdate_register_flb: WARN_ON(!flb->ops->preserve || !flb->ops->unpreserve || !flb->ops->retrieve || !flb->ops->finish)"
	// WarnHandlerNotRegistered: liveupdate_register_flb, a file handler
	// not registered; the call then returns EINVAL.
	WarnHandlerNotRegistered Site = "liveupdate_register_flb: WARN_ON(list_empty(&ACCESS_PRIVATE(fh, list)))"
	// WarnListedWithoutUsers: liveupdate_register_flb, an FLB without
	// users still on the global list; the call then returns EINVAL.
	WarnListedWithoutUsers Site = "liveupdate_register_flb: WARN_ON(!list_empty(&private->list))"
	// WarnFinishRetrieve: luo_flb_file_finish_one, the last dependent
	// file finished, the FLB was not retrieved, and retrieving it now
	// failed; .finish is then skipped.
	WarnFinishRetrieve Site = "luo_flb_file_finish_one: WARN_ON(err)"
	// WarnFixedFinishCount is not in luo_flb.c: with
	// Options.FixFinishBeforeRetrieve, the first finish could not load the
	// incoming count, and the fixed kernel warns as 7.0 does for a failed
	// retrieve in finish.
	WarnFixedFinishCount Site = "luo_flb_file_finish_one (FixFinishBeforeRetrieve): incoming count not loaded"
)

// Warning is one WARN_ON the kernel prints: where it fired, for which FLB
// and what the condition found (Err names the FLB too). It is an error;
// errors.Is sees Err's errno.
type Warning struct {
	Site Site
	FLB  string // the FLB's compatible
	Err  error
}

func (w Warning) Error() string {
	return fmt.Sprintf("WARN_ON in %s: %v", w.Site, w.Err)
}

func (w Warning) Unwrap() error { return w.Err }

// warn reports w through Options.Warn, at the point where the kernel would
// print it, and counts it.
func (k *Kernel) warn(site Site, f *FLB, err error) {
	k.warns.Add(1)
	if k.opts.Warn != nil {
		k.opts.Warn(Warning{Site: site, FLB: f.Compatible, Err: err})
	}
}

// WarnCount returns how many WARN_ONs fired in this boot.
func (k *Kernel) WarnCount() int { return int(k.warns.Load()) }

package luo

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/pkg/kernel"
	"github.com/kho-sim/kho-sim/pkg/kho"
)

// Detected is what a handover's compatible strings say it is.
type Detected struct {
	KHO string // the root FDT's compatible
	LUO string // the "LUO" child's compatible; "" when there is none to read
	// Generation is the one these name; "" when they name none kho-sim knows.
	Generation kernel.Generation
}

func (d Detected) String() string {
	name := string(d.Generation)
	if name == "" {
		name = "unknown generation"
	}
	return fmt.Sprintf("%s (KHO %q, LUO %q)", name, d.KHO, d.LUO)
}

// Expected is what a kernel of generation g writes and expects to read.
func Expected(g kernel.Generation) Detected {
	g = g.OrDefault()
	return Detected{KHO: kho.CompatibleOf(g), LUO: compatibleOf(g), Generation: g}
}

// Detect recognises a handover KHO accepted from its compatible strings:
// the root's, then the "LUO" child's (an FDT's root compatible in kho-v1,
// the first 8 bytes of the blob in kho-v4).
func Detect(in *kho.Incoming) Detected {
	d := Detected{KHO: in.Compatible()}
	if in.Compatible() == kho.CompatibleV4 {
		blob, err := in.SubtreeBytes(FDTKHOEntryName)
		if err != nil || len(blob) < SerCompatLen {
			return d
		}
		d.LUO = cstring(blob[:SerCompatLen])
		if d.LUO == SerCompatible {
			d.Generation = kernel.V72
		}
		return d
	}
	t, _, err := in.SubtreeFDT(FDTKHOEntryName)
	if err != nil {
		return d
	}
	d.LUO, _ = t.Root.String("compatible")
	switch d.LUO {
	case FDTCompatible:
		d.Generation = kernel.V70
	case FDTCompatibleV2:
		d.Generation = kernel.LUOv2
	}
	return d
}

// Mismatch says what a real kernel of generation reader does with a
// handover detected as d. A different KHO root never gets past
// kho_populate: KHO revival is disabled and the kernel boots as if cold,
// all preserved state lost. The same root with a different LUO child fails
// luo_early_startup with EINVAL, and liveupdate_early_init panics
// (luo_restore_fail) in 7.0, the luo-v2 step and 7.2 alike.
func Mismatch(d Detected, reader kernel.Generation) string {
	reader = reader.OrDefault()
	want := Expected(reader)
	if d.KHO != want.KHO {
		return fmt.Sprintf("%s rejects the KHO root %q in kho_populate (incompatible with %q) and disables KHO revival: it boots without the handover and every preserved file and FLB state is lost",
			reader.Name(), d.KHO, want.KHO)
	}
	if reader == kernel.V72 {
		return fmt.Sprintf("%s rejects the LUO blob %q (LUO state is incompatible with %q: EINVAL) and panics at boot (liveupdate_early_init, luo_restore_fail)",
			reader.Name(), d.LUO, want.LUO)
	}
	also := ""
	if reader == kernel.V70 && d.Generation == kernel.LUOv2 {
		also = ", and the FDT has no luo-flb node either"
	}
	return fmt.Sprintf("%s finds the LUO FDT %q, not %q (luo_early_startup: EINVAL%s) and panics at boot (liveupdate_early_init, luo_restore_fail)",
		reader.Name(), d.LUO, want.LUO, also)
}

// Noun names the "LUO" child of generation g: an FDT, or 7.2's blob.
func Noun(g kernel.Generation) string {
	if g == kernel.V72 {
		return "LUO blob"
	}
	return "LUO FDT"
}

// ExplainRootDamage completes kho.ReadIncoming's error for a root FDT the
// kernel takes although kho-sim's parser refuses it (*kho.RootDamage) with
// what the kernel of generation reader does next: luo_early_startup looks
// up the "LUO" child with kho_retrieve_subtree; a lookup that fails leaves
// it without LUO state (ENOENT), an unreadable address or blob-size panics
// it (EINVAL, luo_restore_fail). Any other error comes back as it is.
func ExplainRootDamage(err error, reader kernel.Generation) error {
	var d *kho.RootDamage
	if !errors.As(err, &d) {
		return err
	}
	_, _, serr := d.Subtree(FDTKHOEntryName)
	switch {
	case errors.Is(serr, unix.ENOENT):
		return fmt.Errorf("%w; then %s (%v)", err, reader.Does(kernel.LosesLUOState), serr)
	case serr != nil:
		return fmt.Errorf("%w; then luo_early_startup fails (%v) and %s", err, serr, reader.Does(kernel.PanicsAtBoot))
	}
	return err
}

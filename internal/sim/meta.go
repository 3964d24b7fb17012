package sim

import (
	"github.com/kho-sim/kho-sim/pkg/fdt"
	"github.com/kho-sim/kho-sim/pkg/meta"
)

// kho-sim's own metadata child lives in pkg/meta, below the simulator, so
// that inspect and corrupt read it without importing internal/sim; these names
// keep the boot's code as it was.
type (
	Meta     = meta.Meta
	MetaFLB  = meta.FLB
	MetaFile = meta.File
)

// MetaName is meta.Name.
const MetaName = meta.Name

// DecodeMeta is meta.Decode.
func DecodeMeta(t *fdt.Tree) (*Meta, error) { return meta.Decode(t) }

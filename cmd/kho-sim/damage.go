package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/kho-sim/kho-sim/internal/corrupt"
	"github.com/kho-sim/kho-sim/pkg/physmem"
)

// damage is a --corrupt / kho_sim.corrupt= request: damage the image that
// boot writes.
type damage struct {
	kind corrupt.Kind
	boot int
}

func parseDamage(s string) (damage, error) {
	if s == "" {
		return damage{}, nil
	}
	name, at, hasAt := strings.Cut(s, "@")
	k, err := corrupt.ParseKind(name)
	if errors.Is(err, corrupt.ErrUnknownKind) {
		return damage{}, usageError{fmt.Sprintf("corrupt %q: unknown kind ('kho-sim sim --corrupt list' shows them)", name)}
	} else if err != nil {
		return damage{}, usageError{err.Error()}
	}
	d := damage{kind: k, boot: 1}
	if hasAt {
		if d.boot, err = strconv.Atoi(at); err != nil || d.boot < 1 {
			return damage{}, usageError{fmt.Sprintf("corrupt %q: want KIND@BOOT with BOOT from 1", s)}
		}
	}
	return d, nil
}

func (d damage) apply(r *physmem.Region, root uint64) (string, error) {
	return corrupt.Apply(r, root, d.kind)
}

func listCorruptions(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, k := range corrupt.Kinds() {
		fmt.Fprintf(tw, "%s\t%s\n", k, k.Describe())
	}
	fmt.Fprintf(tw, "%sSEED\t%s\n", corrupt.BitflipPrefix, "one bit of a 7.2 handover's root FDT, LUO blob, session or file blocks, FLB page or radix tree, drawn with SEED")
	return tw.Flush()
}

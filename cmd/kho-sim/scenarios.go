package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/kho-sim/kho-sim/internal/scenario"
)

// loadScenario takes a built-in name or a path to a scenario file.
func loadScenario(nameOrPath string) (*scenario.Scenario, error) {
	if strings.ContainsAny(nameOrPath, "/.") {
		f, err := os.Open(nameOrPath)
		if err != nil {
			return nil, usageError{fmt.Sprintf("scenario: %v", err)}
		}
		defer f.Close()
		sc, err := scenario.Parse(nameOrPath, f)
		if err != nil {
			return nil, usageError{err.Error()}
		}
		return sc, nil
	}
	sc, err := scenario.Lookup(nameOrPath)
	if errors.Is(err, scenario.ErrUnknown) {
		return nil, usageError{err.Error()}
	}
	return sc, err
}

// listScenarios prints every built-in with its summary.
func listScenarios(w io.Writer) error {
	all, err := scenario.Builtins()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, sc := range all {
		fmt.Fprintf(tw, "%s\t%s\n", sc.Name, sc.Summary)
	}
	return tw.Flush()
}

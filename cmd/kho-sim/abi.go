package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/kho-sim/kho-sim/pkg/abi"
	"github.com/kho-sim/kho-sim/pkg/ktap"
)

// defaultBTF is the running kernel's BTF.
const defaultBTF = "/sys/kernel/btf/vmlinux"

// runABI prints the handover layouts, or with "check" compares them with a
// kernel's BTF.
func runABI(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "check" {
		return runABICheck(args[1:], stdout, stderr)
	}
	fs := newFlags("abi", "abi [--json | --c]\n       kho-sim abi check [--btf FILE]", stderr)
	asJSON := fs.Bool("json", false, "print a JSON document")
	asC := fs.Bool("c", false, "print the layouts as a C header")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *asJSON && *asC:
		return usageError{"--json and --c exclude each other"}
	case *asJSON:
		return writeABIJSON(stdout)
	case *asC:
		_, err := io.WriteString(stdout, abi.CHeader())
		return err
	}
	_, err := io.WriteString(stdout, abiTables())
	return err
}

// abiDocument is the JSON form of `kho-sim abi --json`.
type abiDocument struct {
	ABI       string         `json:"abi"`
	Structs   []abi.Struct   `json:"structs"`
	Constants []abi.Constant `json:"constants"`
}

const abiName = "Linux 7.0 KHO/LUO handover, little endian"

func writeABIJSON(w io.Writer) error {
	b, err := json.MarshalIndent(abiDocument{ABI: abiName, Structs: abi.Layouts(), Constants: abi.Constants()}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode JSON: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// abiTables renders every struct with its field offsets, then the constants.
func abiTables() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", abiName)
	for _, s := range abi.Layouts() {
		packed := "packed"
		if !s.Packed {
			packed = "not packed"
		}
		fmt.Fprintf(&b, "\nstruct %s: %d bytes, %s (%s)\n", s.Name, s.Size, packed, s.Source)
		typeWidth := len("type")
		for _, f := range s.Fields {
			typeWidth = max(typeWidth, len(f.Type))
		}
		fmt.Fprintf(&b, "  %6s %6s  %-*s  %s\n", "offset", "size", typeWidth, "type", "field")
		for _, f := range s.Fields {
			fmt.Fprintf(&b, "  %6d %6d  %-*s  %s\n", f.Offset, f.Size, typeWidth, f.Type, f.Name)
		}
	}
	constants := abi.Constants()
	nameWidth, valueWidth := len("name"), len("value")
	for _, c := range constants {
		nameWidth, valueWidth = max(nameWidth, len(c.Name)), max(valueWidth, len(c.Value()))
	}
	b.WriteString("\nconstants\n")
	fmt.Fprintf(&b, "  %-*s  %-*s  %s\n", nameWidth, "name", valueWidth, "value", "source")
	for _, c := range constants {
		fmt.Fprintf(&b, "  %-*s  %-*s  %s\n", nameWidth, c.Name, valueWidth, c.Value(), c.Source)
	}
	return b.String()
}

// runABICheck compares the layouts with the structs of a kernel's BTF and
// reports one KTAP result per struct: ok, not ok (each difference as a
// diagnostic before it), or ok with SKIP when the BTF lacks the struct.
func runABICheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("abi check", "abi check [--btf FILE]", stderr)
	path := fs.String("btf", defaultBTF, "kernel BTF: raw BTF like "+defaultBTF+", or an ELF file with a .BTF section (vmlinux)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	spec, err := abi.LoadBTF(*path)
	if err != nil {
		return err
	}
	results, err := abi.CheckBTF(spec)
	if err != nil {
		return fmt.Errorf("%s: %w", *path, err)
	}
	w := ktap.NewWriter(stdout)
	w.Header(len(results))
	w.Diag("kho-sim's handover layouts against the BTF in %s", *path)
	failed := 0
	for _, r := range results {
		name := r.Struct.Name
		switch r.Verdict {
		case abi.Match:
			w.Result(true, name, ktap.Directive{Reason: r.Note})
		case abi.Absent:
			w.Result(true, name, ktap.Skip(r.Note))
		default:
			failed++
			for _, d := range r.Differences {
				w.Diag("%s: %s", name, d)
			}
			if r.Note != "" {
				w.Diag("%s: %s", name, r.Note)
			}
			w.Result(false, name, ktap.Directive{})
		}
	}
	w.Totals()
	if err := w.Err(); err != nil {
		return err
	}
	if failed > 0 {
		return errFailed
	}
	return nil
}

// Command kho-sim simulates Linux's Live Update Orchestrator FLB lifecycle
// on top of Kexec HandOver, in-process (sim) or on real memory across real
// kexec reboots (run), and reports in KTAP.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"sim", "run a scenario in-process, a file standing in for physical memory", runSim},
		{"run", "run a scenario at boot on real memory, kexec'ing between boots", runRun},
		{"inspect", "print a handover image from /dev/mem or a file, with every finding", runInspect},
		{"preflight", "check this machine for a kho-sim run and say what to fix (KTAP)", runPreflight},
		{"abi", "print the handover layouts kho-sim writes; check them against a kernel's BTF", runABI},
	}
}

// usageError is a mistake on the command line: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func main() {
	os.Exit(mainWithArgs(os.Args[1:], os.Stdout, os.Stderr))
}

func mainWithArgs(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(args[1:], stdout, stderr)
			var status exitStatus
			switch {
			case err == nil:
				return 0
			case errors.Is(err, flag.ErrHelp):
				return 0
			case errors.As(err, new(usageError)):
				fmt.Fprintf(stderr, "kho-sim %s: %v\n", c.name, err)
				return 2
			case errors.Is(err, errFailed):
				return 1
			case errors.As(err, &status):
				return int(status)
			default:
				fmt.Fprintf(stderr, "kho-sim %s: %v\n", c.name, err)
				return 1
			}
		}
	}
	fmt.Fprintf(stderr, "kho-sim: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

// exitStatus is a command's chosen exit status, its output already said
// why (preflight's KSFT_SKIP, 4).
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// errFailed means the run reported failures in its KTAP; nothing more to say.
var errFailed = errors.New("failures reported")

func usage(w io.Writer) {
	var b strings.Builder
	b.WriteString("usage: kho-sim COMMAND [flags]\n\ncommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-10s %s\n", c.name, c.summary)
	}
	b.WriteString("\nRun 'kho-sim COMMAND --help' for a command's flags.\n")
	io.WriteString(w, b.String())
}

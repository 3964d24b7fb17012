// Package ktap writes, reads and checks test results in KTAP version 1, the
// Kernel Test Anything Protocol described in the kernel's
// Documentation/dev-tools/ktap.rst (https://docs.kernel.org/dev-tools/ktap.html).
//
// kho-sim reports each boot of a kexec chain as KTAP on the serial console.
// Three tools cover that path:
//
//   - Writer prints KTAP, one whole line per Write call so that lines survive
//     interleaving with kernel console output, each plan right after its
//     version line: a subtest is held until the result that closes it.
//   - Parse rebuilds the result tree from a QEMU serial log, skipping kernel
//     messages, init chatter and anything else that is not KTAP, and joining
//     the subtests printed by successive boots under one top-level plan.
//   - Validate checks that a stream is pure, well-formed KTAP version 1.
//
// The kernel's own parser, tools/testing/kunit/kunit.py, is the reference:
// it counts a test's results against a plan it must meet before them, so
// a plan after results is an error for Validate and fails Report.Passed.
//
// Nesting: the specification's text says one level of indentation is two
// spaces, while KUnit, the kernel's main producer, indents by four. Writer
// indents by four and Validate requires exactly four per level; Parse
// accepts any deeper indentation, so two-space output reads too.
package ktap

// Package kernel is the vocabulary every reader of a handover reports in:
// the Linux generations kho-sim models (7.0, the luo-v2 step, 7.2), what
// each one's kernel does with a handover it cannot use (Action, worded for
// each generation as data), and the Finding that says where a handover is
// wrong, what is wrong and what that kernel does about it.
//
// It knows no format: pkg/kho and pkg/luo map a Generation to their
// compatibles and detect it from them.
package kernel

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// PageSize is the kernel's PAGE_SIZE on x86-64
// (arch/x86/include/asm/page_types.h), the same in every generation: the
// unit of every preserved allocation, the FLB table and memfd's folios.
const PageSize = 4096

// Generation is a kernel generation: the handover it writes and the one
// it expects to read. The FLB model is the same in all; only the image
// differs.
type Generation string

// The generations kho-sim writes and reads.
const (
	// V70 is Linux 7.0: KHO "kho-v1" (bitmap chunks), the LUO FDT
	// "luo-v1" with luo-session and luo-flb nodes. The default.
	V70 Generation = "7.0"
	// LUOv2 is the first step of the "Remove limits on sessions and
	// files" series: KHO "kho-v1", the LUO FDT "luo-v2" whose
	// luo-abi-header points at struct luo_ser; 7.0's session and file
	// blocks.
	LUOv2 Generation = "luo-v2"
	// V72 is Linux 7.2: KHO "kho-v4" (radix tree, blob children,
	// kexec-metadata), the raw "luo-v5" struct luo_ser, linked session
	// and file blocks.
	V72 Generation = "7.2"
)

// Generations lists the generations, oldest first.
func Generations() []Generation { return []Generation{V70, LUOv2, V72} }

// Parse reads a generation name; "" is the default, 7.0.
func Parse(s string) (Generation, error) {
	if s == "" {
		return V70, nil
	}
	for _, g := range Generations() {
		if string(g) == s {
			return g, nil
		}
	}
	return "", fmt.Errorf("ABI generation %q: want one of %s: %w", s, names(), unix.EINVAL)
}

// ParseList reads a comma-separated list of generations; boot n of a run
// uses entry (n-1) mod len. "" is the default, 7.0; an empty entry in a
// list is an error.
func ParseList(s string) ([]Generation, error) {
	if s == "" {
		return []Generation{V70}, nil
	}
	var out []Generation
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			return nil, fmt.Errorf("ABI generations %q: an empty entry: want one of %s: %w", s, names(), unix.EINVAL)
		}
		g, err := Parse(f)
		if err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, nil
}

func names() string {
	var n []string
	for _, g := range Generations() {
		n = append(n, string(g))
	}
	return strings.Join(n, ", ")
}

// OrDefault is g, or V70 for "".
func (g Generation) OrDefault() Generation {
	if g == "" {
		return V70
	}
	return g
}

// Name names a kernel of the generation in a sentence.
func (g Generation) Name() string { name, _ := g.words(); return name }

// subject is how a finding names the generation's kernel.
func (g Generation) subject() string { _, subject := g.words(); return subject }

// words are the generation's names in a sentence and in a finding.
func (g Generation) words() (name, subject string) {
	switch g.OrDefault() {
	case LUOv2:
		return "a kernel with the luo-v2 LUO ABI", "a luo-v2 kernel"
	case V72:
		return "Linux 7.2", "the 7.2 kernel"
	}
	return "Linux 7.0", "the 7.0 kernel"
}

// Action is what a kernel does with a handover that fails a check. The
// zero Action is nothing worse than what kho-sim reports.
type Action int

// The actions of every generation's kernel.
const (
	NoAction Action = iota
	// PanicsAtBoot: luo_early_startup fails and liveupdate_early_init
	// panics (luo_restore_fail).
	PanicsAtBoot
	// ReadsPastPage: the FLB header sends the kernel past its page.
	ReadsPastPage
	// LosesFLBState: the FLB is not found (ENOENT); its state is lost.
	LosesFLBState
	// UsesBadAddress: the kernel's phys_to_virt of the address is unchecked.
	UsesBadAddress
	// UsesUnpreserved: the kernel hands a subsystem memory it may reuse.
	UsesUnpreserved
	// DisablesRevival: kho_populate refuses the root; the kernel boots
	// without the handover.
	DisablesRevival
	// ReadsPastBlock: a count sends the kernel past its session or file block.
	ReadsPastBlock
	// FailsOpen: luo_session_deserialize fails the first open of
	// /dev/liveupdate.
	FailsOpen
	// WarnsNoFiles: a session claims files but has no file block.
	WarnsNoFiles
	// StopsAtFile: an unterminated compatible ends the file restore.
	StopsAtFile
	// IgnoresMetadata: kho_in_kexec_metadata (7.2) cannot use the blob.
	IgnoresMetadata
	// ReadsUnpreserved: the kernel reads one of its own structures from
	// memory the previous kernel did not preserve.
	ReadsUnpreserved
	// FailsMemfd: memfd_luo_retrieve cannot rebuild the file from its
	// memfd-v2 state, or rebuilds it from memory nothing vouches for.
	FailsMemfd
	// OopsesSessionsAtBoot: luo_session_setup_incoming restores the
	// session chain in an early initcall through phys_to_virt unchecked
	// (observed on the real 7.2 kernel: beyond RAM it panics).
	OopsesSessionsAtBoot
	// OopsesFLBAtRetrieve: the first FLB retrieve reads the FLB header
	// through phys_to_virt unchecked; CONFIG_LIVEUPDATE_TEST's FLBs do so
	// in an initcall (observed: beyond RAM it panics).
	OopsesFLBAtRetrieve
	// TakesOversizedBlob: luo_early_startup checks only that blob-size
	// covers struct luo_ser (observed: the handover is taken).
	TakesOversizedBlob
	// LosesLUOState: luo_early_startup finds no "LUO" child
	// (kho_retrieve_subtree: ENOENT) and boots as if none was handed over.
	LosesLUOState
	// DecidedOutside: the kernel reads the structure at boot from memory
	// the handover does not hold (RAM it does not preserve, or outside
	// it), so what lies there then decides; kho-sim cannot know it.
	DecidedOutside
)

// predicate is the action's wording after the kernel's name.
func (a Action) predicate() string {
	switch a {
	case PanicsAtBoot:
		return "panics at boot (liveupdate_early_init)"
	case ReadsPastPage:
		return "reads past the FLB page"
	case LosesFLBState:
		return "does not find the FLB (ENOENT) and its state is lost"
	case UsesBadAddress:
		return "dereferences the address with phys_to_virt unchecked"
	case UsesUnpreserved:
		return "hands the subsystem memory the new kernel may already have reused"
	case DisablesRevival:
		return "disables KHO revival and boots without the handover"
	case ReadsPastBlock:
		return "reads past the end of a preserved block"
	case FailsOpen:
		return "fails the first open of /dev/liveupdate (luo_session_deserialize) and restores no session after it"
	case WarnsNoFiles:
		return "WARNs and restores none of the session's files"
	case StopsAtFile:
		return "'s strcmp runs past the entry; the files after it are not restored"
	case IgnoresMetadata:
		return "warns and ignores the kexec-metadata (kexec_count restarts at 1)"
	case ReadsUnpreserved:
		return "reads memory the previous kernel did not preserve"
	case FailsMemfd:
		return "fails to retrieve the memfd (memfd_luo_retrieve), or restores it from unchecked memory"
	case OopsesSessionsAtBoot:
		return "reads it at boot (luo_session_setup_incoming): outside RAM the oops kills init and it panics"
	case OopsesFLBAtRetrieve:
		return "reads its count at the first FLB retrieve (at boot with CONFIG_LIVEUPDATE_TEST): outside RAM the oops kills init and it panics"
	case LosesLUOState:
		return "finds no LUO child (kho_retrieve_subtree: ENOENT) and boots with no LUO state"
	case DecidedOutside:
		return "reads it at boot from memory the handover does not hold, and what lies there then decides (beyond RAM the oops kills init and it panics)"
	case TakesOversizedBlob:
		return "takes the blob anyway (luo_early_startup checks only blob-size >= 32) and reads its first 32 bytes"
	}
	return ""
}

// Does says what the generation's kernel does: "the 7.2 kernel panics at
// boot (liveupdate_early_init)"; "" for NoAction. Only 7.2 has
// kexec-metadata, so IgnoresMetadata always speaks of 7.2.
func (g Generation) Does(a Action) string {
	p := a.predicate()
	if p == "" {
		return ""
	}
	if a == IgnoresMetadata {
		g = V72
	}
	if strings.HasPrefix(p, "'") {
		return g.subject() + p
	}
	return g.subject() + " " + p
}

// Finding is one thing wrong with a handover: where (the structure), what
// is wrong, and what a real kernel of the handover's generation does with
// it ("" when the kernel does not notice or it concerns kho-sim's own
// data). Action is that verdict's kind, NoAction for a sentence of its own
// (a generation mismatch).
type Finding struct {
	// Where names the structure: "kho root", "preserved-memory map",
	// "subtree NAME", "LUO FDT", "luo_ser", "LUO blob", "FLB table",
	// "sessions", "kexec-metadata", "kho-sim metadata", "payloads".
	Where  string `json:"where"`
	What   string `json:"what"`
	Kernel string `json:"kernel"`
	Action Action `json:"-"`
}

// Find makes the finding at where, what g's kernel does being a.
func (g Generation) Find(where string, a Action, format string, args ...any) Finding {
	return Finding{Where: where, What: fmt.Sprintf(format, args...), Kernel: g.Does(a), Action: a}
}

// Error is what is wrong and what the kernel does about it.
func (f Finding) Error() string {
	if f.Kernel == "" {
		return f.What
	}
	return f.What + "; " + f.Kernel
}

// String is Error preceded by where.
func (f Finding) String() string { return f.Where + ": " + f.Error() }

// String is the action's wording without a kernel's name.
func (a Action) String() string {
	if p := a.predicate(); p != "" {
		return strings.TrimPrefix(p, "'s ")
	}
	return "nothing kho-sim does not report"
}

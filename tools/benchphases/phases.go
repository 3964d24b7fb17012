package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kho-sim/kho-sim/pkg/ktap"
)

// The loaders, as run.go names them.
const (
	loaderKhoSim     = "kho-sim"
	loaderKexecTools = "kexec-tools"
)

// Phase names as internal/sim and cmd/kho-sim print them, parentheses removed.
const (
	phaseBootToStart = "boot to start"
	phaseRegionMap   = "region map"
	phaseBlackout    = "blackout"
	phaseHandover    = "handover read"
	phaseSteps       = "steps"
	phaseSerialize   = "serialize"
	phaseStartToLoad = "start to load"
	phaseRepack      = "initramfs repack"
	phaseRetained    = "initramfs retained" // the repack's place when the kernel kept its initramfs
	phaseLoad        = "kexec_file_load"
	// phaseHop is derived: one boot's kexec_file_load plus the next boot's
	// blackout, the whole cost of a kexec that the loader controls.
	phaseHop = "kexec_file_load + blackout"
)

// order is the table's row order (the order of a hop); phases not listed
// follow in name order.
var order = []string{
	phaseBootToStart, phaseRegionMap, phaseBlackout, phaseHandover, phaseSteps,
	phaseSerialize, phaseStartToLoad, phaseRepack, phaseRetained, phaseLoad, phaseHop,
}

// labels adds what a phase stands for where its name does not say it.
var labels = map[string]string{
	phaseBootToStart: "boot to start (kernel start to kho-sim)",
	phaseBlackout:    "blackout (reboot call to next kho-sim)",
	phaseHandover:    "handover read (verify the incoming image)",
	phaseSteps:       "steps (retrieve, finish, preserve)",
}

// arriving lists the phases measured on the way into a boot.
var arriving = map[string]bool{phaseBootToStart: true, phaseRegionMap: true, phaseBlackout: true, phaseHandover: true}

// Boot is what one boot of a chain reported.
type Boot struct {
	OK     bool
	Phases []Phase // in the order printed
}

// Phase is one "# phase" diagnostic.
type Phase struct {
	Name string // without a parenthesised suffix
	Note string // the suffix's contents: "kexec-tools", "64 files, 23564 KiB"
	D    time.Duration
}

// Loader returns the loader the boot used for the next kernel, "" if it
// loaded none.
func (b Boot) Loader() string {
	for _, p := range b.Phases {
		if p.Name != phaseLoad {
			continue
		}
		if p.Note == loaderKexecTools {
			return loaderKexecTools
		}
		return loaderKhoSim
	}
	return ""
}

// ParseLog reads a serial log and returns its boots in order.
func ParseLog(r io.Reader) ([]Boot, error) {
	rep, err := ktap.Parse(r)
	if err != nil {
		return nil, fmt.Errorf("parse KTAP: %w", err)
	}
	boots := make([]Boot, 0, len(rep.Results))
	for _, res := range rep.Results {
		b := Boot{OK: res.OK && res.Sub != nil && res.Sub.Passed()}
		var diags []string
		if res.Sub != nil {
			for _, sr := range res.Sub.Results {
				diags = append(diags, sr.Diags...)
			}
			diags = append(diags, res.Sub.Diags...)
		}
		diags = append(diags, res.Diags...)
		for _, d := range diags {
			if p, ok := ParsePhase(d); ok {
				b.Phases = append(b.Phases, p)
			}
		}
		boots = append(boots, b)
	}
	return boots, nil
}

// ParsePhase reads a diagnostic "phase NAME[ (NOTE)] TIME ms".
func ParsePhase(diag string) (Phase, bool) {
	rest, ok := strings.CutPrefix(diag, "phase ")
	if !ok {
		return Phase{}, false
	}
	rest, ok = strings.CutSuffix(rest, " ms")
	if !ok {
		return Phase{}, false
	}
	i := strings.LastIndexByte(rest, ' ')
	if i <= 0 {
		return Phase{}, false
	}
	ms, err := strconv.ParseFloat(rest[i+1:], 64)
	if err != nil || ms < 0 || math.IsInf(ms, 0) || math.IsNaN(ms) || ms > float64(math.MaxInt64/int64(time.Millisecond)) {
		return Phase{}, false
	}
	p := Phase{Name: strings.TrimSpace(rest[:i]), D: time.Duration(ms * float64(time.Millisecond))}
	if open := strings.IndexByte(p.Name, '('); open >= 0 && strings.HasSuffix(p.Name, ")") {
		p.Note = p.Name[open+1 : len(p.Name)-1]
		p.Name = strings.TrimSpace(p.Name[:open])
	}
	if p.Name == "" {
		return Phase{}, false
	}
	return p, true
}

// Samples holds durations per phase per loader.
type Samples map[string]map[string][]time.Duration

func (s Samples) add(phase, loader string, d time.Duration) {
	if s[phase] == nil {
		s[phase] = map[string][]time.Duration{}
	}
	s[phase][loader] = append(s[phase][loader], d)
}

// Add attributes the phases of one chain's boots to loaders (see the
// package comment). Only boots that passed count.
func (s Samples) Add(boots []Boot) {
	for i, b := range boots {
		if !b.OK {
			continue
		}
		own := b.Loader()
		prev := ""
		if i > 0 && boots[i-1].OK {
			prev = boots[i-1].Loader()
		}
		for _, p := range b.Phases {
			loader := own
			if arriving[p.Name] {
				loader = prev
			}
			if loader != "" {
				s.add(p.Name, loader, p.D)
			}
		}
		if own == "" || i+1 >= len(boots) || !boots[i+1].OK {
			continue
		}
		load, okLoad := find(b.Phases, phaseLoad)
		black, okBlack := find(boots[i+1].Phases, phaseBlackout)
		if okLoad && okBlack {
			s.add(phaseHop, own, load+black)
		}
	}
}

// Hop is one kexec hop of a chain, from kho-sim's start in the boot that
// hands over to kho-sim's start in the next.
type Hop struct {
	Loader string
	// User is kho-sim's own userspace time on the way out: start to load
	// (flags, region map, handover read, steps, serialize, preflight: all
	// from kho-sim's start to the load) plus the initramfs repack (or the
	// open of the retained one).
	User time.Duration
	// Wall is the hop's wall time: User, kexec_file_load and the next
	// boot's blackout (reboot call to the next kho-sim's start). The time
	// between the load's end and the reboot call (the boot's last results
	// and draining the console) is in no phase and so in neither.
	Wall time.Duration
}

// Share is kho-sim's userspace share of the hop's wall time.
func (h Hop) Share() float64 { return float64(h.User) / float64(h.Wall) }

// Hops returns the hops of one chain whose both boots passed and reported
// every phase a hop is made of.
func Hops(boots []Boot) []Hop {
	var out []Hop
	for i := 0; i+1 < len(boots); i++ {
		b, next := boots[i], boots[i+1]
		if !b.OK || !next.OK || b.Loader() == "" {
			continue
		}
		start, ok1 := find(b.Phases, phaseStartToLoad)
		repack, ok2 := find(b.Phases, phaseRepack)
		if !ok2 {
			repack, ok2 = find(b.Phases, phaseRetained)
		}
		load, ok3 := find(b.Phases, phaseLoad)
		black, ok4 := find(next.Phases, phaseBlackout)
		if ok1 && ok2 && ok3 && ok4 && start+repack+load+black > 0 {
			out = append(out, Hop{Loader: b.Loader(), User: start + repack, Wall: start + repack + load + black})
		}
	}
	return out
}

// WriteShare prints kho-sim's userspace share of a hop, the median over
// hops with its range, per loader and over all.
func WriteShare(w io.Writer, hops []Hop) error {
	var sb strings.Builder
	line := func(what string, hs []Hop) {
		if len(hs) == 0 {
			return
		}
		shares := make([]float64, len(hs))
		var users, walls []time.Duration
		for i, h := range hs {
			shares[i] = h.Share()
			users, walls = append(users, h.User), append(walls, h.Wall)
		}
		slices.Sort(shares)
		n := len(shares)
		med := shares[n/2]
		if n%2 == 0 {
			med = (shares[n/2-1] + shares[n/2]) / 2
		}
		u, wl := Summarize(users), Summarize(walls)
		fmt.Fprintf(&sb, "kho-sim userspace share of a hop, %s: median %.1f%% (%.1f-%.1f%%, n=%d); userspace median %.1f ms of a %.0f ms hop.\n",
			what, 100*med, 100*shares[0], 100*shares[n-1], n, float64(u.Median)/float64(time.Millisecond), float64(wl.Median)/float64(time.Millisecond))
	}
	line("all hops", hops)
	for _, l := range []string{loaderKhoSim, loaderKexecTools} {
		line(l+" loading", slices.DeleteFunc(slices.Clone(hops), func(h Hop) bool { return h.Loader != l }))
	}
	_, err := io.WriteString(w, sb.String())
	return err
}

func find(ps []Phase, name string) (time.Duration, bool) {
	for _, p := range ps {
		if p.Name == name {
			return p.D, true
		}
	}
	return 0, false
}

// Stats summarises samples.
type Stats struct {
	N                int
	Median, Min, Max time.Duration
}

// Summarize returns the statistics of ds (zero for none).
func Summarize(ds []time.Duration) Stats {
	if len(ds) == 0 {
		return Stats{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return Stats{N: n, Median: med, Min: s[0], Max: s[n-1]}
}

// Phases returns the phase names in table order.
func (s Samples) Phases() []string {
	var out []string
	for _, p := range order {
		if _, ok := s[p]; ok {
			out = append(out, p)
		}
	}
	var rest []string
	for p := range s {
		if !slices.Contains(order, p) {
			rest = append(rest, p)
		}
	}
	slices.Sort(rest)
	return append(out, rest...)
}

// Ratio is the ratio of the medians, kho-sim / kexec-tools, for a phase;
// ok is false when either side has no sample or kexec-tools' median is 0.
func (s Samples) Ratio(phase string) (float64, bool) {
	a, b := Summarize(s[phase][loaderKhoSim]), Summarize(s[phase][loaderKexecTools])
	if a.N == 0 || b.N == 0 || b.Median == 0 {
		return 0, false
	}
	return float64(a.Median) / float64(b.Median), true
}

// WriteTable prints the Markdown table.
func (s Samples) WriteTable(w io.Writer) error {
	var sb strings.Builder
	sb.WriteString("| phase | kho-sim median | kho-sim min-max | n | kexec-tools median | kexec-tools min-max | n | kho-sim / kexec-tools |\n")
	sb.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, p := range s.Phases() {
		label := p
		if l, ok := labels[p]; ok {
			label = l
		}
		a, b := Summarize(s[p][loaderKhoSim]), Summarize(s[p][loaderKexecTools])
		ratio := "-"
		if r, ok := s.Ratio(p); ok {
			ratio = fmt.Sprintf("%.2f", r)
		}
		fmt.Fprintf(&sb, "| %s | %s | %s | %d | %s | %s | %d | %s |\n", label, ms(a.Median, a.N), span(a), a.N, ms(b.Median, b.N), span(b), b.N, ratio)
	}
	_, err := io.WriteString(w, sb.String())
	return err
}

func ms(d time.Duration, n int) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

func span(s Stats) string {
	if s.N == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f-%.1f", float64(s.Min)/float64(time.Millisecond), float64(s.Max)/float64(time.Millisecond))
}

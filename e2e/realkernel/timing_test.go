package realkernel

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// consoleLine is one line of a serial console with the host time since
// QEMU started.
type consoleLine struct {
	At   time.Duration
	Text string
}

// bootTiming is one boot of a round trip.
type bootTiming struct {
	// Host is the host's wall clock from this boot's start (QEMU start for
	// the first boot, the kernel banner otherwise) to the next banner or,
	// for the last boot, to the pass line.
	Host time.Duration
	// ToInit is the kernel's own timestamp at "Run /init as init process":
	// from this kernel's start to its first user program.
	ToInit time.Duration
}

// roundTrip is one run: every boot and the total from QEMU start to the
// pass line.
type roundTrip struct {
	Total time.Duration
	Boots []bootTiming
}

var (
	errNoPassLine = errors.New("no pass line on the console")
	errBoots      = errors.New("wrong number of boots on the console")
	runInitRE     = regexp.MustCompile(`\[\s*([0-9]+\.[0-9]+)\]\s+Run /init as init process`)
)

// bannerText starts every kernel's log ("Linux version 7.2.13 ...").
const bannerText = "Linux version "

// analyze splits a console into boots at the kernel banners and times
// them; the run ends at the first line containing pass, which must come
// after the last of wantBoots banners.
func analyze(lines []consoleLine, pass string, wantBoots int) (roundTrip, error) {
	var banners []time.Duration
	var toInit []time.Duration
	end := -1
	for i, l := range lines {
		if strings.Contains(l.Text, pass) {
			end = i
			break
		}
		if strings.Contains(l.Text, bannerText) {
			banners = append(banners, l.At)
			toInit = append(toInit, 0)
		}
		if m := runInitRE.FindStringSubmatch(l.Text); m != nil && len(toInit) > 0 {
			s, err := strconv.ParseFloat(m[1], 64)
			if err != nil {
				return roundTrip{}, fmt.Errorf("kernel timestamp %q: %w", m[1], err)
			}
			toInit[len(toInit)-1] = time.Duration(s * float64(time.Second))
		}
	}
	if end < 0 {
		return roundTrip{}, fmt.Errorf("%w: %q", errNoPassLine, pass)
	}
	if len(banners) != wantBoots {
		return roundTrip{}, fmt.Errorf("%w: %d kernel banners before %q, want %d", errBoots, len(banners), pass, wantBoots)
	}
	rt := roundTrip{Total: lines[end].At}
	for i := range banners {
		from := time.Duration(0)
		if i > 0 {
			from = banners[i]
		}
		to := rt.Total
		if i+1 < len(banners) {
			to = banners[i+1]
		}
		rt.Boots = append(rt.Boots, bootTiming{Host: to - from, ToInit: toInit[i]})
	}
	return rt, nil
}

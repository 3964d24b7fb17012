package main

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/internal/realconsumer"
	"github.com/kho-sim/kho-sim/internal/sim"
	"github.com/kho-sim/kho-sim/pkg/liveupdate"
)

// paramConsumer marks the real KHO kernel kho-sim handed over to: there the
// kernel restores kho-sim's sessions itself, so kho-sim does not read the
// region but retrieves its memfds through /dev/liveupdate
// (internal/realconsumer). realKHOCmdline sets it.
const paramConsumer = "kho_sim.consumer"

// paramThen names the program the consumer boot hands the machine to once
// every file came back (its argv, quoted whole when it has spaces): there
// the real kernel can preserve state of its own and kexec again, and the
// next boot read what the real kernel handed over. kho-sim never kexecs
// from a consumer boot itself.
const paramThen = "kho_sim.then"

// syslog(2) SYSLOG_ACTION_CONSOLE_LEVEL, and the level that lets KERN_INFO
// through to the console.
const (
	syslogActionConsoleLevel = 8
	consoleLevelInfo         = 7
)

// runConsumer is kho-sim's boot in the real KHO kernel: it recomputes the
// memfds the previous boot preserved from the scenario and that boot's
// number (every file's content is seeded from both), retrieves, checks and
// finishes them, and powers off as a last boot does.
func runConsumer(f runFlags, cfg runConfig, stdout io.Writer) error {
	writer := cfg.In.Boot - 1
	if writer < 1 {
		return usageError{fmt.Sprintf("%s=1 in boot %d: no previous kho-sim boot handed over", paramConsumer, cfg.In.Boot)}
	}
	files, err := sim.MemfdFiles(cfg.Scenario, writer)
	if err != nil {
		return err
	}
	declared := 0
	for _, s := range cfg.Scenario.Sessions {
		declared += len(s.Files)
	}
	fmt.Fprintf(stdout, "%sscenario %s, boot %d's handover: %d memfds", realconsumer.Prefix, cfg.Scenario.Name, writer, len(files))
	if n := declared - len(files); n > 0 {
		fmt.Fprintf(stdout, " (and %d files of kho-sim's own handlers, which a real kernel cannot restore: not retrieved)", n)
	}
	fmt.Fprintln(stdout)
	// u-root's init lowers the console log level to 5: the kernel's
	// KERN_INFO lines of what follows (the test FLBs' "finish was
	// triggered") must reach the serial log.
	if ownsMachine() {
		if _, _, e := unix.Syscall(unix.SYS_SYSLOG, syslogActionConsoleLevel, 0, consoleLevelInfo); e != 0 {
			fmt.Fprintf(stdout, "%sconsole log level: %v\n", realconsumer.Prefix, e)
		}
	}
	dev, err := liveupdate.OpenPath(cmp.Or(f.liveupdate, liveupdate.Device))
	if err != nil {
		// A kernel without KHO and LUO ignores SETUP_KEXEC_KHO and boots
		// without the handover: this boot must say so and fail, not pass.
		fmt.Fprintf(stdout, "%sFAILED: %v: this kernel did not take kho-sim's handover (a kernel without KHO and LUO ignores SETUP_KEXEC_KHO and boots as if none was given)\n", realconsumer.Prefix, err)
		return endConsumer(f, cfg, false)
	}
	r := realconsumer.Run(devSessions{dev}, files, stdout)
	dev.Close()
	if r.OK() {
		fmt.Fprintf(stdout, "%sDONE: %d sessions, %d memfds, %d bytes, every byte as kho-sim wrote it; sessions finished\n", realconsumer.Prefix, r.Sessions, r.Files, r.Bytes)
	} else {
		fmt.Fprintf(stdout, "%sFAILED: %d problems\n", realconsumer.Prefix, len(r.Problems))
	}
	if then := strings.Fields(cfg.then); len(then) > 0 && r.OK() {
		fmt.Fprintf(stdout, "%shanding the machine to %q\n", realconsumer.Prefix, then)
		drainConsole()
		// exec only returns on failure; then the boot ends as any other.
		err := handOver(then)
		fmt.Fprintf(stdout, "%sFAILED: %s=%q: %v\n", realconsumer.Prefix, paramThen, cfg.then, err)
		r.Problems = append(r.Problems, err.Error())
	}
	return endConsumer(f, cfg, r.OK())
}

// endConsumer ends the consumer boot as a last boot ends: powered off
// where kho-sim owns the machine, else with its status.
func endConsumer(f runFlags, cfg runConfig, ok bool) error {
	if !f.stay && !cfg.stay && ownsMachine() {
		drainConsole()
		return unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	}
	if !ok {
		return errFailed
	}
	return nil
}

// handOver replaces kho-sim with the program argv names, which then owns
// the machine: /dev/liveupdate is closed (only one process may hold it).
func handOver(argv []string) error {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return err
	}
	return unix.Exec(path, argv, os.Environ())
}

// devSessions retrieves sessions from /dev/liveupdate.
type devSessions struct{ dev *os.File }

func (d devSessions) Retrieve(name string) (realconsumer.Session, error) {
	s, err := liveupdate.RetrieveSession(d.dev, name)
	if err != nil {
		return nil, err
	}
	return devSession{s}, nil
}

type devSession struct{ f *os.File }

func (s devSession) RetrieveFD(token uint64) (*os.File, error) {
	return liveupdate.RetrieveFD(s.f, token)
}
func (s devSession) Finish() error { return liveupdate.FinishSession(s.f) }
func (s devSession) Close() error  { return s.f.Close() }

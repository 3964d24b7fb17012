package pid1

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	kcmdline "github.com/kho-sim/kho-sim/internal/cmdline"
	"github.com/kho-sim/kho-sim/pkg/kexec"
)

// Console prints a guest's console lines, tagged with the program and the
// stage so that the host tells the boots apart in one serial log.
type Console struct {
	// Tag starts every line Logf prints: "TAG stage=N: message".
	Tag string
	// TimeTag starts every line Mark prints ("TIMETAG stage=N event=E
	// uptime=U init=S"); a guest without timing lines leaves it empty.
	TimeTag string
	// Stage is 1, or 2 once the command line says so.
	Stage int
	// Start is when /init started.
	Start time.Time
	// Cmdline is the kernel command line, trimmed.
	Cmdline string
	// Args are the arguments after "boot" when another program handed
	// the machine over (see Program.Main); nil as PID 1.
	Args []string
}

// Logf prints one console line tagged with the stage.
func (c *Console) Logf(format string, args ...any) {
	fmt.Printf("%s stage=%d: %s\n", c.Tag, c.Stage, fmt.Sprintf(format, args...))
}

// Mark prints a timing line: the kernel's uptime (time since this kernel
// started) and the time since /init started.
func (c *Console) Mark(event string) {
	if c.TimeTag == "" {
		return
	}
	fmt.Printf("%s stage=%d event=%s uptime=%s init=%.3f\n", c.TimeTag, c.Stage, event, Uptime(), time.Since(c.Start).Seconds())
}

// Program is a guest program: the only process of a minimal initramfs on
// the guest, the command that packs that initramfs on the host.
type Program struct {
	// Name prefixes the host command's errors.
	Name string
	// Tag and TimeTag are the Console's.
	Tag, TimeTag string
	// StageParam is the command line parameter whose value 2 marks stage 2.
	StageParam string
	// Debugfs mounts debugfs as well.
	Debugfs bool
	// Failed is what a failed boot prints before its error.
	Failed string
	// Pack is the host command, given the arguments after the program name.
	Pack func(args []string) error
	// Boot is one boot of the guest, once the file systems are mounted and
	// the stage is known; params is the parsed command line.
	Boot func(c *Console, params kcmdline.Line) error
}

// Main runs the program: as PID 1, or as "NAME boot [ARGS]" exec'd by the
// program that owned the machine before (kho-sim's kho_sim.then), one
// boot, which ends with a timing line "end" and a machine reset, having
// printed Failed and the error if it failed; anywhere else the host
// command, which exits 1 on error.
func (p Program) Main() {
	handed := os.Getpid() != 1 && len(os.Args) > 1 && os.Args[1] == "boot"
	if os.Getpid() != 1 && !handed {
		if err := p.Pack(os.Args[1:]); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", p.Name, err)
			os.Exit(1)
		}
		return
	}
	c := &Console{Tag: p.Tag, TimeTag: p.TimeTag, Stage: 1, Start: time.Now()}
	if handed {
		c.Args = os.Args[2:]
	}
	if err := p.boot(c); err != nil {
		c.Logf("%s: %v", p.Failed, err)
	}
	c.Mark("end")
	Reset(c.Logf)
}

func (p Program) boot(c *Console) error {
	if err := Mount(p.Debugfs); err != nil {
		return err
	}
	cmdline, err := Cmdline()
	if err != nil {
		return err
	}
	c.Cmdline = cmdline
	params := kcmdline.Parse(cmdline)
	if v, _ := params.Lookup(p.StageParam); v == "2" {
		c.Stage = 2
	}
	return p.Boot(c, params)
}

// PackFlags parses a guest's host command line, "pack -kernel BZIMAGE -o
// OUT.cpio" and the flags extra defines on the same flag set; usage is the
// error for any other command. It returns the kernel and the output file.
func PackFlags(args []string, usage string, extra func(fs *flag.FlagSet)) (kernel, out string, err error) {
	if len(args) == 0 || args[0] != "pack" {
		return "", "", errors.New(usage)
	}
	fs := flag.NewFlagSet("pack", flag.ContinueOnError)
	k := fs.String("kernel", "", "bzImage to ship as /bzImage, the kernel the guest kexecs")
	o := fs.String("o", "", "initramfs to write")
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args[1:]); err != nil {
		return "", "", err
	}
	if *k == "" || *o == "" || fs.NArg() != 0 {
		return "", "", errors.New("pack: -kernel and -o are required")
	}
	return *k, *o, nil
}

// Source is a file of the initramfs to pack, read from Path on the host:
// this executable when Path is empty.
type Source struct {
	Name, Path string
	Mode       uint64
}

// Pack writes the initramfs of the sources to out.
func Pack(out string, sources ...Source) error {
	files := make([]File, 0, len(sources))
	for _, s := range sources {
		path := s.Path
		if path == "" {
			self, err := os.Executable()
			if err != nil {
				return fmt.Errorf("pack: find this executable: %w", err)
			}
			path = self
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("pack: %w", err)
		}
		files = append(files, File{Name: s.Name, Data: data, Mode: s.Mode})
	}
	f, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	if err := WriteInitramfs(f, files...); err != nil {
		f.Close()
		return fmt.Errorf("pack %s: %w", out, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	return nil
}

// RebootKexec starts the kernel kexec.FileLoad loaded (kexec.Reboot) after
// giving the console time to drain. It returns only if the kexec failed.
func RebootKexec() error {
	unix.Sync()
	time.Sleep(200 * time.Millisecond)
	return kexec.Reboot()
}

// Reset resets the machine (QEMU's -no-reboot turns that into an exit)
// once the console has drained; the 8250 drains its buffer by interrupt.
// It never returns; a failed reset is reported through logf.
func Reset(logf func(format string, args ...any)) {
	unix.Sync()
	time.Sleep(300 * time.Millisecond)
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART); err != nil {
		logf("reboot(RESTART): %v", err)
	}
	for {
		time.Sleep(time.Hour)
	}
}

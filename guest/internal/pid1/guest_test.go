package pid1

import (
	"flag"
	"io"
	"os"
	"regexp"
	"testing"
	"time"
)

// capture returns what fn prints on stdout.
func capture(t *testing.T, fn func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	fn()
	os.Stdout = stdout
	w.Close()
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// TestConsoleLines: the console lines keep the form the host's tests
// (e2e/realkernel) match, "TAG stage=N: message" and "TIMETAG stage=N
// event=E uptime=U init=S"; a guest without a TimeTag prints no timing line.
func TestConsoleLines(t *testing.T) {
	c := &Console{Tag: "LUO-GUEST", TimeTag: "LUO-TIME", Stage: 2, Start: time.Now()}
	if got := capture(t, func() { c.Logf("TEST %s", "PASSED") }); got != "LUO-GUEST stage=2: TEST PASSED\n" {
		t.Errorf("Logf printed %q", got)
	}
	mark := regexp.MustCompile(`^LUO-TIME stage=2 event=init uptime=\S+ init=\d+\.\d{3}\n$`)
	if got := capture(t, func() { c.Mark("init") }); !mark.MatchString(got) {
		t.Errorf("Mark printed %q", got)
	}
	c.TimeTag = ""
	if got := capture(t, func() { c.Mark("end") }); got != "" {
		t.Errorf("Mark without a TimeTag printed %q", got)
	}
}

// TestPackFlags: pack needs -kernel and -o, takes the guest's own flags,
// and any other command is the usage error.
func TestPackFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"both", []string{"pack", "-kernel", "bz", "-o", "out", "-extra", "x"}, ""},
		{"no output", []string{"pack", "-kernel", "bz"}, "pack: -kernel and -o are required"},
		{"stray argument", []string{"pack", "-kernel", "bz", "-o", "out", "more"}, "pack: -kernel and -o are required"},
		{"not pack", []string{"unpack"}, "usage: guest pack"},
		{"nothing", nil, "usage: guest pack"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var extra *string
			kernel, out, err := PackFlags(tt.args, "usage: guest pack", func(fs *flag.FlagSet) { extra = fs.String("extra", "", "") })
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("PackFlags(%q) = %v, want %q", tt.args, err, tt.wantErr)
				}
				return
			}
			if err != nil || kernel != "bz" || out != "out" || *extra != "x" {
				t.Fatalf("PackFlags(%q) = %q, %q, extra %q, %v", tt.args, kernel, out, *extra, err)
			}
		})
	}
}

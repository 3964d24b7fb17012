package scenario

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	"golang.org/x/sys/unix"

	"github.com/kho-sim/kho-sim/pkg/memfd"
)

// Scenario is one parsed and validated scenario file.
type Scenario struct {
	Name    string `yaml:"name"`
	Summary string `yaml:"summary"`
	// Flaw names a known 7.0 flaw this scenario exposes; its broken
	// promises are then expected failures on the 7.0 model.
	Flaw string `yaml:"flaw"`
	// Cycle is how many of the last boots a longer run repeats, in turn
	// (default 1: the last boot).
	Cycle    int       `yaml:"cycle"`
	FLBs     []FLB     `yaml:"flbs"`
	Handlers []Handler `yaml:"handlers"`
	Sessions []Session `yaml:"sessions"`
	Boots    []Boot    `yaml:"boots"`

	// Source is where the scenario came from, for error messages.
	Source string `yaml:"-"`
}

// Known flaws of the 7.0 seed that a scenario may declare.
const (
	FlawFinishBeforeRetrieve = "finish-before-retrieve"
	// FlawLongCompatible: a 48-character compatible has no room for its
	// NUL; serialization cuts it to 47 and the next kernel never finds it.
	FlawLongCompatible = "long-compatible"
)

// FLB declares one File-Lifecycle-Bound object. Its compatible string is
// its name unless Compatible says otherwise (two FLB objects may then claim
// one compatible, which registration must refuse).
type FLB struct {
	Name       string `yaml:"name"`
	Compatible string `yaml:"compatible"`
	Payload    Size   `yaml:"payload"`
	// Data, when set, is the FLB's whole serialized state: a fixed data
	// handle and no payload, as lib/tests/liveupdate.c's test FLBs
	// preserve TEST_FLB_MAGIC_BASE + i and check it at retrieve.
	Data *uint64 `yaml:"data"`
	Line int     `yaml:"-"`
}

// CompatibleString is the compatible the FLB registers with.
func (f FLB) CompatibleString() string {
	if f.Compatible != "" {
		return f.Compatible
	}
	return f.Name
}

// Handler declares a file handler and the FLBs it registers, in order.
// Register false leaves an FLB to explicit register-flb steps.
type Handler struct {
	Name     string   `yaml:"name"`
	FLBs     []string `yaml:"flbs"`
	Register *bool    `yaml:"register"`
	// Memfd makes the handler save its files as memfd-v2 state
	// (mm/memfd_luo.c) instead of kho-sim payloads; its name is then the
	// compatible a real kernel knows ("memfd-v2").
	Memfd bool `yaml:"memfd"`
	Line  int  `yaml:"-"`
}

// AutoRegister reports whether the boot registers this handler's FLBs itself.
func (h Handler) AutoRegister() bool { return h.Register == nil || *h.Register }

// Session declares a session and its files.
//
// Copies N declares N sessions NAME-0 .. NAME-(N-1) with the same files.
type Session struct {
	Name   string `yaml:"name"`
	Copies int    `yaml:"copies"`
	Files  []File `yaml:"files"`
	Line   int    `yaml:"-"`
}

// File declares one preserved file.
//
// Count N declares N files with tokens Token .. Token+N-1.
type File struct {
	Token   uint64 `yaml:"token"`
	Count   int    `yaml:"count"`
	Handler string `yaml:"handler"`
	Payload Size   `yaml:"payload"`
	// Shape is a memfd handler's file: one of memfd.ExampleShapes.
	Shape string `yaml:"shape"`
	Line  int    `yaml:"-"`
}

// Boot is what one simulated boot does.
type Boot struct {
	Steps []Step `yaml:"steps"`
	End   string `yaml:"end"`
	Line  int    `yaml:"-"`
}

// How a boot ends.
const (
	EndKexec      = "kexec"
	EndCold       = "cold"
	EndKexecFails = "kexec-fails"
)

// Step is one operation of a boot.
type Step struct {
	Op     string
	Arg    string
	Args   map[string]string
	Expect unix.Errno // 0: must succeed
	Line   int
}

// Target is the step's single argument, in either form ("op: x" or
// "op: {flb: x, expect: E}").
func (s Step) Target() string {
	if s.Arg != "" {
		return s.Arg
	}
	for _, k := range []string{"session", "file", "flb", "handler"} {
		if v := s.Args[k]; v != "" && len(s.Args) == 1 {
			return v
		}
	}
	return ""
}

func (s Step) String() string {
	var b strings.Builder
	b.WriteString(s.Op)
	if s.Arg != "" {
		b.WriteString(" " + s.Arg)
	}
	for _, k := range slices.Sorted(maps.Keys(s.Args)) {
		fmt.Fprintf(&b, " %s=%s", k, s.Args[k])
	}
	if s.Expect != 0 {
		b.WriteString(" expect " + unix.ErrnoName(s.Expect))
	}
	return b.String()
}

// Size is a byte count written as 4096, 4KiB, 64K or 1MiB.
type Size uint64

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*s = Size(v)
	return nil
}

// ParseSize parses a byte count with an optional K, KiB, M or MiB suffix.
func ParseSize(v string) (uint64, error) {
	mult := uint64(1)
	num := strings.TrimSpace(v)
	for _, suf := range []struct {
		s string
		m uint64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"K", 1 << 10}, {"M", 1 << 20}} {
		if strings.HasSuffix(num, suf.s) {
			num, mult = strings.TrimSuffix(num, suf.s), suf.m
			break
		}
	}
	n, err := strconv.ParseUint(num, 0, 64)
	if err != nil || n > (1<<32)/mult {
		return 0, fmt.Errorf("bad size %q (want e.g. 4096, 4KiB, 1MiB, at most 4GiB)", v)
	}
	return n * mult, nil
}

// The unmarshalers below record each item's line for later errors.

// UnmarshalYAML implements yaml.Unmarshaler.
func (f *FLB) UnmarshalYAML(n *yaml.Node) error {
	type plain FLB
	return decodeAt(n, (*plain)(f), &f.Line)
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (h *Handler) UnmarshalYAML(n *yaml.Node) error {
	type plain Handler
	return decodeAt(n, (*plain)(h), &h.Line)
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Session) UnmarshalYAML(n *yaml.Node) error {
	type plain Session
	return decodeAt(n, (*plain)(s), &s.Line)
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (f *File) UnmarshalYAML(n *yaml.Node) error {
	type plain File
	return decodeAt(n, (*plain)(f), &f.Line)
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *Boot) UnmarshalYAML(n *yaml.Node) error {
	type plain Boot
	return decodeAt(n, (*plain)(b), &b.Line)
}

func decodeAt(n *yaml.Node, v any, line *int) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: want a mapping", n.Line)
	}
	if err := rejectUnknown(n, v); err != nil {
		return err
	}
	*line = n.Line
	return n.Decode(v)
}

// rejectUnknown refuses keys the struct does not have: n.Decode alone
// ignores them, and a misspelt key must not pass silently.
func rejectUnknown(n *yaml.Node, v any) error {
	known := structYAMLKeys(v)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !slices.Contains(known, k.Value) {
			return fmt.Errorf("line %d: unknown key %q (known: %s)", k.Line, k.Value, strings.Join(known, ", "))
		}
	}
	return nil
}

// UnmarshalYAML implements yaml.Unmarshaler for the step forms "op",
// "op: arg" and "op: {key: value, ...}".
func (s *Step) UnmarshalYAML(n *yaml.Node) error {
	s.Line = n.Line
	switch n.Kind {
	case yaml.ScalarNode:
		s.Op = n.Value
		return nil
	case yaml.MappingNode:
	default:
		return fmt.Errorf("line %d: a step is an operation name or a one-key mapping", n.Line)
	}
	if len(n.Content) != 2 {
		return fmt.Errorf("line %d: a step has exactly one operation, got %d keys", n.Line, len(n.Content)/2)
	}
	s.Op = n.Content[0].Value
	v := n.Content[1]
	switch v.Kind {
	case yaml.ScalarNode:
		s.Arg = v.Value
	case yaml.MappingNode:
		s.Args = map[string]string{}
		for i := 0; i+1 < len(v.Content); i += 2 {
			k, val := v.Content[i], v.Content[i+1]
			if val.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: %s.%s must be a plain value", val.Line, s.Op, k.Value)
			}
			if k.Value == "expect" {
				e, err := ParseErrno(val.Value)
				if err != nil {
					return fmt.Errorf("line %d: %w", val.Line, err)
				}
				s.Expect = e
				continue
			}
			s.Args[k.Value] = val.Value
		}
	default:
		return fmt.Errorf("line %d: bad argument of %s", v.Line, s.Op)
	}
	return nil
}

// ParseErrno accepts an errno name such as ENOSPC.
func ParseErrno(name string) (unix.Errno, error) {
	for e := unix.Errno(1); e < 256; e++ {
		if unix.ErrnoName(e) == name {
			return e, nil
		}
	}
	return 0, fmt.Errorf("unknown errno %q (want a name such as ENOSPC)", name)
}

// Parse reads and validates one scenario; file names it in errors, which
// read "file:line: reason".
func Parse(file string, r io.Reader) (*Scenario, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: %s", file, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(root.Content) != 1 {
		return nil, fmt.Errorf("%s: empty scenario", file)
	}
	sc := &Scenario{Source: file}
	doc := root.Content[0]
	if doc.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: a scenario is a mapping", file, doc.Line)
	}
	if err := rejectUnknown(doc, sc); err != nil {
		return nil, fmt.Errorf("%s:%s", file, strings.TrimPrefix(err.Error(), "line "))
	}
	if err := doc.Decode(sc); err != nil {
		return nil, fmt.Errorf("%s:%s", file, strings.TrimPrefix(strings.TrimPrefix(err.Error(), "yaml: "), "line "))
	}
	if err := sc.expand(); err != nil {
		return nil, fmt.Errorf("%s:%w", file, err)
	}
	if err := sc.validate(); err != nil {
		return nil, fmt.Errorf("%s:%w", file, err)
	}
	return sc, nil
}

// maxExpanded bounds what copies and count may declare.
const maxExpanded = 4096

// expand turns copies and count into plain declarations.
func (sc *Scenario) expand() error {
	var sessions []Session
	for _, s := range sc.Sessions {
		var files []File
		for _, f := range s.Files {
			if f.Count < 0 || f.Count > maxExpanded {
				return errAt(f.Line, "count %d: want 0 to %d", f.Count, maxExpanded)
			}
			for i := range max(f.Count, 1) {
				g := f
				g.Token, g.Count = f.Token+uint64(i), 0
				files = append(files, g)
			}
		}
		s.Files = files
		if s.Copies < 0 || s.Copies > maxExpanded || s.Copies*len(files) > maxExpanded {
			return errAt(s.Line, "copies %d of %d files: want at most %d files in all", s.Copies, len(files), maxExpanded)
		}
		if s.Copies == 0 {
			sessions = append(sessions, s)
			continue
		}
		for i := range s.Copies {
			c := s
			c.Name, c.Copies = fmt.Sprintf("%s-%d", s.Name, i), 0
			sessions = append(sessions, c)
		}
	}
	sc.Sessions = sessions
	return nil
}

type lineError struct {
	line int
	msg  string
}

func (e *lineError) Error() string { return fmt.Sprintf("%d: %s", e.line, e.msg) }

func errAt(line int, format string, args ...any) error {
	return &lineError{line, fmt.Sprintf(format, args...)}
}

// validate checks every cross reference, so a run never meets a name the
// scenario did not declare.
func (sc *Scenario) validate() error {
	if sc.Name == "" {
		return errAt(1, "missing name")
	}
	flbs := map[string]bool{}
	for _, f := range sc.FLBs {
		if f.Name == "" {
			return errAt(f.Line, "FLB without a name")
		}
		if flbs[f.Name] {
			return errAt(f.Line, "FLB %q declared twice", f.Name)
		}
		if f.Data != nil && f.Payload != 0 {
			return errAt(f.Line, "FLB %q has both data and a payload", f.Name)
		}
		flbs[f.Name] = true
	}
	handlers := map[string]bool{}
	memfds := map[string]bool{}
	for _, h := range sc.Handlers {
		if h.Name == "" {
			return errAt(h.Line, "handler without a name")
		}
		if handlers[h.Name] {
			return errAt(h.Line, "handler %q declared twice", h.Name)
		}
		handlers[h.Name] = true
		memfds[h.Name] = h.Memfd
		for _, f := range h.FLBs {
			if !flbs[f] {
				return errAt(h.Line, "handler %q depends on undeclared FLB %q", h.Name, f)
			}
		}
	}
	sessions := map[string]bool{}
	for _, s := range sc.Sessions {
		if s.Name == "" {
			return errAt(s.Line, "session without a name")
		}
		if sessions[s.Name] {
			return errAt(s.Line, "session %q declared twice", s.Name)
		}
		sessions[s.Name] = true
		tokens := map[uint64]bool{}
		for _, f := range s.Files {
			if !handlers[f.Handler] {
				return errAt(f.Line, "file %d of session %q uses undeclared handler %q", f.Token, s.Name, f.Handler)
			}
			if tokens[f.Token] {
				return errAt(f.Line, "token %d used twice in session %q", f.Token, s.Name)
			}
			if err := validateShape(f, s.Name, memfds[f.Handler]); err != nil {
				return err
			}
			tokens[f.Token] = true
		}
	}
	if sc.Flaw != "" && sc.Flaw != FlawFinishBeforeRetrieve && sc.Flaw != FlawLongCompatible {
		return errAt(1, "unknown flaw %q (known: %s, %s)", sc.Flaw, FlawFinishBeforeRetrieve, FlawLongCompatible)
	}
	if len(sc.Boots) == 0 {
		return errAt(1, "a scenario needs at least one boot")
	}
	if sc.Cycle < 0 || sc.Cycle > len(sc.Boots)-1 && sc.Cycle > 1 {
		return errAt(1, "cycle %d: want 1 to %d (the boots after the cold boot)", sc.Cycle, len(sc.Boots)-1)
	}
	for i, b := range sc.Boots {
		switch b.End {
		case "", EndKexec, EndCold, EndKexecFails:
		default:
			return errAt(b.Line, "boot %d: unknown end %q (want kexec, cold or kexec-fails)", i+1, b.End)
		}
		for _, st := range b.Steps {
			if err := sc.validateStep(st, flbs, handlers); err != nil {
				return err
			}
		}
	}
	return nil
}

// validateShape checks that a memfd handler's file names a known shape and
// has no payload, and that no other file has a shape.
func validateShape(f File, session string, memfdHandler bool) error {
	switch {
	case !memfdHandler && f.Shape != "":
		return errAt(f.Line, "file %d of session %q has a shape, but handler %q is not a memfd handler", f.Token, session, f.Handler)
	case !memfdHandler:
		return nil
	case f.Payload != 0:
		return errAt(f.Line, "file %d of session %q: memfd handler %q files have a shape, not a payload", f.Token, session, f.Handler)
	}
	if _, ok := memfd.ExampleSpec(f.Shape, 0); !ok {
		return errAt(f.Line, "file %d of session %q: unknown memfd shape %q (known: %s)", f.Token, session, f.Shape, strings.Join(memfd.ExampleShapes(), ", "))
	}
	return nil
}

// stepArgs lists, per operation, its argument form: "" none, "session",
// "file" (S/T), "flb", "handler", or the keys of its map.
var stepArgs = map[string][]string{
	"preserve-all": {"parallel?"}, "retrieve-all": {"parallel?"},
	"get-incoming-all": nil, "finish-all": {"parallel?"}, "abort": nil,
	"churn":          {"parallel", "rounds"},
	"create-session": {"session"}, "retrieve-session": {"session"}, "finish": {"session"}, "close": {"session"},
	"preserve": {"file"}, "retrieve-file": {"file"},
	"get-incoming": {"flb"}, "get-outgoing": {"flb"},
	"register-handler": {"handler"},
	"register-flb":     {"handler", "flb"}, "unregister-flb": {"handler", "flb"},
	"fault": {"op", "nth", "errno", "flb|handler"},
}

// Ops lists the step operations, sorted.
func Ops() []string { return slices.Sorted(maps.Keys(stepArgs)) }

func (sc *Scenario) validateStep(st Step, flbs, handlers map[string]bool) error {
	form, ok := stepArgs[st.Op]
	if !ok {
		return errAt(st.Line, "unknown operation %q (known: %s)", st.Op, strings.Join(Ops(), ", "))
	}
	switch {
	case len(form) == 0:
		if st.Arg != "" || len(st.Args) != 0 {
			return errAt(st.Line, "%s takes no argument", st.Op)
		}
	case form[0] == "parallel?" || st.Op == "churn":
		return validateParallel(st)
	case len(form) == 1:
		if len(st.Args) > 1 || (len(st.Args) == 1 && st.Args[form[0]] == "") {
			return errAt(st.Line, "%s takes only %s (and expect)", st.Op, form[0])
		}
		if st.Arg == "" {
			st.Arg = st.Args[form[0]]
		}
		if st.Arg == "" {
			return errAt(st.Line, "%s needs a %s", st.Op, form[0])
		}
		return sc.checkRef(st.Line, form[0], st.Arg, flbs, handlers)
	case st.Op == "fault":
		return sc.validateFault(st, flbs, handlers)
	default:
		for _, k := range form {
			if st.Args[k] == "" {
				return errAt(st.Line, "%s needs %s", st.Op, strings.Join(form, " and "))
			}
			if err := sc.checkRef(st.Line, k, st.Args[k], flbs, handlers); err != nil {
				return err
			}
		}
		if len(st.Args) != len(form) {
			return errAt(st.Line, "%s takes only %s (and expect)", st.Op, strings.Join(form, ", "))
		}
	}
	return nil
}

// validateParallel checks the counts of a step that runs goroutines.
func validateParallel(st Step) error {
	if st.Arg != "" {
		return errAt(st.Line, "%s takes {parallel: N} only", st.Op)
	}
	for k, v := range st.Args {
		if k != "parallel" && !(st.Op == "churn" && k == "rounds") {
			return errAt(st.Line, "%s: unknown argument %q", st.Op, k)
		}
		if n, err := strconv.Atoi(v); err != nil || n < 1 || n > 256 {
			return errAt(st.Line, "%s: %s must be a count from 1 to 256, got %q", st.Op, k, v)
		}
	}
	if st.Op == "churn" && (st.Args["parallel"] == "" || st.Args["rounds"] == "") {
		return errAt(st.Line, "churn needs parallel and rounds")
	}
	return nil
}

// Parallel is the goroutine count a step asks for (1 when it does not).
func (s Step) Parallel() int {
	n, err := strconv.Atoi(s.Args["parallel"])
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// Fault ops a scenario may break.
var faultOps = []string{"preserve", "retrieve", "file-preserve", "file-retrieve", "can-finish"}

func (sc *Scenario) validateFault(st Step, flbs, handlers map[string]bool) error {
	a := st.Args
	if !slices.Contains(faultOps, a["op"]) {
		return errAt(st.Line, "fault op %q (known: %s)", a["op"], strings.Join(faultOps, ", "))
	}
	if n, err := strconv.Atoi(a["nth"]); err != nil || n < 1 {
		return errAt(st.Line, "fault nth must be a count from 1, got %q", a["nth"])
	}
	if _, err := ParseErrno(a["errno"]); err != nil {
		return errAt(st.Line, "fault: %v", err)
	}
	target := "flb"
	if strings.HasPrefix(a["op"], "file-") || a["op"] == "can-finish" {
		target = "handler"
	}
	if a[target] == "" {
		return errAt(st.Line, "fault op %s needs %s", a["op"], target)
	}
	if len(a) != 4 {
		return errAt(st.Line, "fault takes op, nth, errno and %s", target)
	}
	return sc.checkRef(st.Line, target, a[target], flbs, handlers)
}

func (sc *Scenario) checkRef(line int, kind, v string, flbs, handlers map[string]bool) error {
	switch kind {
	case "flb":
		if !flbs[v] {
			return errAt(line, "undeclared FLB %q", v)
		}
	case "handler":
		if !handlers[v] {
			return errAt(line, "undeclared handler %q", v)
		}
	case "session":
		if sc.Session(v) == nil {
			return errAt(line, "undeclared session %q", v)
		}
	case "file":
		s, tok, err := SplitFile(v)
		if err != nil {
			return errAt(line, "%v", err)
		}
		if sc.File(s, tok) == nil {
			return errAt(line, "undeclared file %q", v)
		}
	}
	return nil
}

// SplitFile splits "session/token".
func SplitFile(v string) (string, uint64, error) {
	s, t, ok := strings.Cut(v, "/")
	tok, err := strconv.ParseUint(t, 0, 64)
	if !ok || err != nil {
		return "", 0, fmt.Errorf("file %q: want SESSION/TOKEN", v)
	}
	return s, tok, nil
}

// Session finds a declared session.
func (sc *Scenario) Session(name string) *Session {
	for i := range sc.Sessions {
		if sc.Sessions[i].Name == name {
			return &sc.Sessions[i]
		}
	}
	return nil
}

// File finds a declared file.
func (sc *Scenario) File(session string, token uint64) *File {
	s := sc.Session(session)
	if s == nil {
		return nil
	}
	for i := range s.Files {
		if s.Files[i].Token == token {
			return &s.Files[i]
		}
	}
	return nil
}

// FLB finds a declared FLB.
func (sc *Scenario) FLB(name string) *FLB {
	for i := range sc.FLBs {
		if sc.FLBs[i].Name == name {
			return &sc.FLBs[i]
		}
	}
	return nil
}

// Boot returns what boot i (0 = cold boot) does: past its list a scenario
// repeats its last Cycle boots in turn. The end defaults to kexec while
// boots remain.
func (sc *Scenario) Boot(i, total int) Boot {
	n, cycle, j := len(sc.Boots), max(sc.Cycle, 1), i
	if j >= n {
		j = n - cycle + (j-n)%cycle
	}
	b := sc.Boots[j]
	if b.End == "" {
		b.End = EndKexec
	}
	if i == total-1 && b.End != EndKexecFails {
		b.End = ""
	}
	return b
}

//go:embed builtin/*.yaml
var builtinFS embed.FS

// Builtins returns the built-in scenarios, sorted by name.
func Builtins() ([]*Scenario, error) {
	names, err := fs.Glob(builtinFS, "builtin/*.yaml")
	if err != nil {
		return nil, err
	}
	var out []*Scenario
	for _, n := range names {
		data, err := builtinFS.ReadFile(n)
		if err != nil {
			return nil, err
		}
		sc, err := Parse(path.Base(n), bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		out = append(out, sc)
	}
	slices.SortFunc(out, func(a, b *Scenario) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// ErrUnknown means no built-in scenario has the name asked for.
var ErrUnknown = errors.New("unknown scenario")

// Lookup finds a built-in scenario by name. Each lives in NAME.yaml, so
// only that file is parsed (a boot under emulation pays for every parse);
// the others are read only to list them when the name is unknown.
func Lookup(name string) (*Scenario, error) {
	if data, err := builtinFS.ReadFile("builtin/" + name + ".yaml"); err == nil && !strings.ContainsAny(name, "/*?[\\") {
		sc, err := Parse(name+".yaml", bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		if sc.Name == name {
			return sc, nil
		}
	}
	all, err := Builtins()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, sc := range all {
		if sc.Name == name {
			return sc, nil
		}
		names = append(names, sc.Name)
	}
	return nil, fmt.Errorf("%w %q (built-in: %s; or give a scenario file)", ErrUnknown, name, strings.Join(names, ", "))
}

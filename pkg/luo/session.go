package luo

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"golang.org/x/sys/unix"
)

// Session models struct luo_session and the session file descriptor the
// kernel hands to userspace (ioctls become methods, close becomes Close).
type Session struct {
	core     *Core
	name     string
	incoming bool

	mu        sync.Mutex // session->mutex
	retrieved bool
	closed    bool // the session fd was closed (release ran)
	set       fileSet
}

// Name returns the session name as the kernel stored it (at most 63 bytes).
func (s *Session) Name() string { return s.name }

// sessionName models strscpy(session->name, name, 64) of a C string.
func sessionName(name string) string {
	buf := make([]byte, SessionNameLen)
	strscpy(buf, name)
	return cstring(buf)
}

// insert models luo_session_insert: outgoing lists are capped at SessionMax
// (ENOMEM, as in the kernel), names compared with strncmp over 64 bytes.
// kernel.V72 instead grows the outgoing block set to hold one more session
// first; as in 7.2 a duplicate name then fails with EEXIST without
// shrinking it again, so after 51*k sessions an extra, empty block stays
// linked until a session goes.
func (l *sessionList) insert(s *Session, capped bool) error {
	l.rw.Lock()
	defer l.rw.Unlock()
	switch {
	case capped && l.blocks != nil:
		if err := l.blocks.grow(l.mem, len(l.sessions)+1); err != nil {
			return fmt.Errorf("session %q: %w", s.name, err)
		}
	case capped && len(l.sessions) == SessionMax:
		return fmt.Errorf("session %q: %d sessions exist: %w", s.name, SessionMax, unix.ENOMEM)
	}
	for _, it := range l.sessions {
		if it.name == s.name {
			return fmt.Errorf("session %q: %w", s.name, unix.EEXIST)
		}
	}
	l.sessions = append(l.sessions, s)
	return nil
}

// remove models luo_session_remove; a kernel.V72 outgoing list shrinks its
// block set to what the remaining sessions need.
func (l *sessionList) remove(s *Session) error {
	l.rw.Lock()
	defer l.rw.Unlock()
	l.sessions = slices.DeleteFunc(l.sessions, func(it *Session) bool { return it == s })
	if l.out && l.blocks != nil {
		return l.blocks.shrink(l.mem, len(l.sessions))
	}
	return nil
}

// open models luo_open of /dev/liveupdate, which every ioctl needs: the
// first open deserializes the incoming sessions, and a failure is sticky
// (EIO on every open). Exclusive opening is not modelled.
func (c *Core) open() error {
	if !c.Enabled() {
		return fmt.Errorf("open /dev/liveupdate: %w: %w", errDisabled, unix.ENOENT)
	}
	if err := c.deserialize(); err != nil {
		return fmt.Errorf("open /dev/liveupdate: %w: %w", unix.EIO, err)
	}
	return nil
}

// Open models opening /dev/liveupdate (luo_open): it runs the incoming
// deserialization once. Errors wrap EIO and the cause.
func (c *Core) Open() error { return c.open() }

// CreateSession models LIVEUPDATE_IOCTL_CREATE_SESSION (luo_session_create).
// The name is cut at a NUL and truncated to 63 bytes, as strscpy does.
// Errors: EEXIST (name taken among outgoing sessions), ENOMEM (SessionMax
// sessions exist), and the errors of Open.
func (c *Core) CreateSession(name string) (*Session, error) {
	if err := c.open(); err != nil {
		return nil, err
	}
	s := &Session{core: c, name: sessionName(name)}
	if err := c.outgoing.insert(s, true); err != nil {
		return nil, fmt.Errorf("create session: %w", err)
	}
	return s, nil
}

// RetrieveSession models LIVEUPDATE_IOCTL_RETRIEVE_SESSION
// (luo_session_retrieve): the incoming session whose name equals name over
// 64 bytes (strncmp). Errors: ENOENT (no such session), EINVAL (already
// retrieved), and the errors of Open.
func (c *Core) RetrieveSession(name string) (*Session, error) {
	if err := c.open(); err != nil {
		return nil, err
	}
	key := cstring([]byte(name)[:min(len(name), SessionNameLen)])
	var s *Session
	c.incoming.rw.RLock()
	for _, it := range c.incoming.sessions {
		if it.name == key {
			s = it
			break
		}
	}
	c.incoming.rw.RUnlock()
	if s == nil {
		return nil, fmt.Errorf("retrieve session %q: %w", name, unix.ENOENT)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.retrieved {
		return nil, fmt.Errorf("retrieve session %q: already retrieved: %w", name, unix.EINVAL)
	}
	s.retrieved = true
	return s, nil
}

// Close models closing the session fd (luo_session_release). An outgoing
// session unpreserves all its files (newest first) and goes away. A
// retrieved session finishes its files first; if that fails the error is
// returned, but as in 7.0 the fd is gone anyway (release's result is
// ignored) and the session stays on the incoming list, so Quiesce fails
// for the rest of this boot.
func (s *Session) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("session %q: %w", s.name, unix.EBADF)
	}
	s.closed = true
	var list *sessionList
	if s.retrieved {
		if err := s.finish(); err != nil {
			s.mu.Unlock()
			err = fmt.Errorf("session %q: finish on close: %w", s.name, err)
			s.core.warn(err)
			return err
		}
		list = &s.core.incoming
	} else {
		s.unpreserveFiles()
		list = &s.core.outgoing
	}
	s.mu.Unlock()
	if err := list.remove(s); err != nil {
		s.core.warn(fmt.Errorf("session %q: free session blocks: %w", s.name, err))
	}
	return nil
}

// Abort models userspace closing every outgoing session before reboot (or
// after a failed one): each session, oldest first, unpreserves its files,
// newest first, so every FLB's .unpreserve runs once, after its last file.
func (c *Core) Abort() error {
	c.outgoing.rw.RLock()
	sessions := slices.Clone(c.outgoing.sessions)
	c.outgoing.rw.RUnlock()
	var errs []error
	for _, s := range sessions {
		if err := s.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Sessions returns the names of the outgoing and incoming sessions.
func (c *Core) Sessions() (outgoing, incoming []string) {
	for _, l := range []*sessionList{&c.outgoing, &c.incoming} {
		l.rw.RLock()
		var names []string
		for _, s := range l.sessions {
			names = append(names, s.name)
		}
		l.rw.RUnlock()
		if l == &c.outgoing {
			outgoing = names
		} else {
			incoming = names
		}
	}
	return outgoing, incoming
}

package flb

import "sync"

// Module models the part of struct module that LUO uses: the reference count
// taken by try_module_get and the "going" state in which try_module_get fails.
// A nil *Module is built-in code: always available, never counted.
type Module struct {
	Name string

	mu    sync.Mutex
	refs  int
	going bool
}

// TryGet models try_module_get: it fails once the module is going away.
func (m *Module) TryGet() bool {
	if m == nil {
		return true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.going {
		return false
	}
	m.refs++
	return true
}

// Put models module_put.
func (m *Module) Put() {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.refs--
	m.mu.Unlock()
}

// BeginUnload puts the module in the MODULE_STATE_GOING state.
func (m *Module) BeginUnload() {
	m.mu.Lock()
	m.going = true
	m.mu.Unlock()
}

// Refs returns the number of references held.
func (m *Module) Refs() int {
	if m == nil {
		return 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.refs
}

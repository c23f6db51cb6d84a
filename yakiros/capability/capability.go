// Package capability is the registry of named capabilities that components
// provide and require. A capability may have several providers; it is up while
// at least one of them provides it.
package capability

import (
	"slices"
	"sort"
	"time"
)

// Kernel is the name of the built-in pseudo-component that stands for the
// kernel and the filesystems PID 1 mounts before anything else runs.
const Kernel = "kernel"

// KernelCapabilities returns what the kernel pseudo-component provides.
func KernelCapabilities() []string {
	return []string{
		"kernel.syscalls", "kernel.memory", "kernel.scheduling",
		"filesystem.proc", "filesystem.sys", "filesystem.dev",
		"filesystem.run", "filesystem.devpts",
	}
}

// Status is a capability's state as shown to operators.
type Status string

// Capability states. A capability that was provided once stays listed as
// Down after its last provider withdrew it.
const (
	Up   Status = "UP"
	Down Status = "DOWN"
)

// Capability is one registry entry.
type Capability struct {
	Name      string
	Status    Status
	Providers []string // sorted; empty when Down
	// Since is when the capability last came up or went down: unchanged
	// across a period, it was up (or down) all through it, however short
	// a gap would have been.
	Since time.Time
}

// Registry maps capability names to the components providing them. It is not
// safe for concurrent use: the resolver's event loop owns it.
type Registry struct {
	providers map[string][]string // sorted, no duplicates
	since     map[string]time.Time
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{providers: map[string][]string{}, since: map[string]time.Time{}}
}

// Provide records that provider provides name and reports whether the
// capability came up because of it.
func (r *Registry) Provide(name, provider string) (cameUp bool) {
	ps := r.providers[name]
	i, found := slices.BinarySearch(ps, provider)
	if found {
		return false
	}
	r.providers[name] = slices.Insert(ps, i, provider)
	if len(ps) == 0 {
		r.since[name] = time.Now()
	}
	return len(ps) == 0
}

// Withdraw records that provider no longer provides name and reports whether
// the capability went down because of it.
func (r *Registry) Withdraw(name, provider string) (wentDown bool) {
	ps, known := r.providers[name]
	i, found := slices.BinarySearch(ps, provider)
	if !known || !found {
		return false
	}
	r.providers[name] = slices.Delete(ps, i, i+1)
	if len(r.providers[name]) > 0 {
		return false
	}
	r.since[name] = time.Now()
	return true
}

// Up reports whether any provider currently provides name.
func (r *Registry) Up(name string) bool {
	return len(r.providers[name]) > 0
}

// List returns every capability ever provided, sorted by name.
func (r *Registry) List() []Capability {
	names := make([]string, 0, len(r.providers))
	for n := range r.providers {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]Capability, 0, len(names))
	for _, n := range names {
		c := Capability{Name: n, Status: Down, Providers: slices.Clone(r.providers[n]), Since: r.since[n]}
		if len(c.Providers) > 0 {
			c.Status = Up
		}
		out = append(out, c)
	}
	return out
}

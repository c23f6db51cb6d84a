package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"time"

	"yakimg/yakiros/capability"
)

// Type says how a component's process is treated when it exits.
type Type string

// Component types.
const (
	Service Type = "service" // runs until stopped; its exit is a failure
	Oneshot Type = "oneshot" // runs to completion; exit 0 provides its capabilities
)

// Component is one validated declaration. Durations and sizes are
// normalised (defaults applied), so two declarations that mean the same
// compare equal; File is where it came from and takes no part in that.
type Component struct {
	File     string // the file it came from
	Name     string
	Binary   string // absolute path, executed without PATH lookup
	Args     []string
	Type     Type
	Provides []string
	Requires []string
	Optional []string // started after, if present; never waited for

	Readiness  Readiness
	Health     Health
	Restart    Restart
	Handoff    string         // one of the Handoff* constants; default HandoffNone
	Reload     syscall.Signal // reload_signal; 0 = none
	Resources  Resources
	Isolation  Isolation
	Checkpoint Checkpoint
}

// Handoff methods: how a running service passes its work to a new instance.
const (
	HandoffNone       = "none"       // the old instance stops, the new one starts
	HandoffFDPassing  = "fd-passing" // listening and established sockets move over
	HandoffStateFile  = "state-file" // the service saves and reloads its own state
	HandoffCheckpoint = "checkpoint" // CRIU dump and restore of the process
)

// ReadinessMethod says how a started service tells that it is ready.
type ReadinessMethod string

// Readiness methods.
const (
	ReadyNone    ReadinessMethod = "none"    // ready once the binary runs
	ReadyFile    ReadinessMethod = "file"    // ready when File exists
	ReadyCommand ReadinessMethod = "command" // ready when Command exits 0
	ReadyNotify  ReadinessMethod = "notify"  // ready on READY=1 at $NOTIFY_SOCKET
	ReadySignal  ReadinessMethod = "signal"  // ready on Signal from the service
)

// Readiness is [lifecycle] readiness_*.
type Readiness struct {
	Method   ReadinessMethod
	File     string
	Command  string         // run with /bin/sh -c
	Signal   syscall.Signal // for ReadySignal
	Timeout  time.Duration  // default 30s
	Interval time.Duration  // between command checks; default 5s
}

// HealthMethod says how a running service's health is checked.
type HealthMethod string

// Health methods (docs/HEALTH.md).
const (
	HealthNone    HealthMethod = "none"    // no health checks
	HealthCommand HealthMethod = "command" // healthy when Command exits 0
	HealthFile    HealthMethod = "file"    // healthy while File exists and says so
	HealthNotify  HealthMethod = "notify"  // the service reports HEALTH= on $NOTIFY_SOCKET
)

// Health is [lifecycle] health and health_*.
type Health struct {
	Method           HealthMethod
	Command          string        // health_check, run with /bin/sh -c
	File             string        // health_file
	Interval         time.Duration // default 60s
	Timeout          time.Duration // default 10s
	FailThreshold    int           // consecutive failures ACTIVE → DEGRADED; default 3
	RestartThreshold int           // consecutive failures DEGRADED → FAILED; default 5
}

// Restart is the back-off policy: at most Max starts within Window.
type Restart struct {
	Max    int           // restart_max; default 5
	Window time.Duration // restart_window; default 30s
}

// Resources is [resources]; zero values mean "not set".
type Resources struct {
	Cgroup     string // below /sys/fs/cgroup/graph; default the component name
	MemoryMax  int64  // bytes
	MemoryHigh int64  // bytes
	CPUWeight  int    // 1..10000
	CPUMax     string // "max 100000" or "50000 100000"
	IOWeight   int    // 1..10000
	PidsMax    int
}

// Isolation is [isolation].
type Isolation struct {
	Namespaces []string // "mount", "pid", "net", "uts", "ipc", "user"; sorted, no duplicates
	Root       string   // default "/"
	Hostname   string
	PrivateTmp bool
	UIDMap     []IDMap // user namespace: uid_map lines; none = the kernel's overflow uid
	GIDMap     []IDMap // user namespace: gid_map lines
}

// IDMap is one line of a user namespace's uid_map or gid_map: Count ids
// from Inside in the namespace are Outside.. outside it.
type IDMap struct {
	Inside, Outside, Count int
}

// Checkpoint is [checkpoint].
type Checkpoint struct {
	Enabled          bool
	PreserveFDs      []string // sorted, no duplicates
	LeaveRunning     bool     // default true
	MemoryEstimateMB int
	MaxAge           time.Duration // default 24h
}

// Same reports whether a and b declare the same component (File aside): a
// reload leaves such a component running untouched.
func Same(a, b Component) bool {
	a.File, b.File = "", ""
	return reflect.DeepEqual(a, b)
}

// FileError is a rejected file. Line is 0 when no line can be named.
type FileError struct {
	File string
	Line int
	Msg  string
}

func (e *FileError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Load reads every *.toml file in dir (hidden files and subdirectories are
// skipped) in sorted order. It returns the valid components and one error per
// rejected file; a later file declaring an already used name is rejected.
func Load(dir string) ([]Component, []error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, []error{fmt.Errorf("read component directory: %w", err)}
	}
	var (
		comps []Component
		errs  []error
		// The kernel pseudo-component is built in, so its name is taken.
		owner = map[string]string{capability.Kernel: "the built-in kernel pseudo-component"}
	)
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || filepath.Ext(name) != ".toml" || e.IsDir() {
			continue
		}
		path := filepath.Join(dir, name)
		data, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, &FileError{File: path, Msg: err.Error()})
			continue
		}
		c, err := Parse(path, data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if prev, taken := owner[c.Name]; taken {
			errs = append(errs, &FileError{File: path, Line: keyLine(data, "component", "name"),
				Msg: fmt.Sprintf("duplicate component name %q (already declared by %s)", c.Name, prev)})
			continue
		}
		owner[c.Name] = path
		comps = append(comps, c)
	}
	return comps, errs
}

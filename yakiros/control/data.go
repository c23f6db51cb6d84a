package control

// The Data of each command's Response, shared by graph-resolver (which fills
// it) and any program reading `graphctl --json` (which decodes it).

import "time"

// StatusData answers "status".
type StatusData struct {
	Components []ComponentStatus `json:"components"`
}

// ComponentStatus is one component in StatusData.
type ComponentStatus struct {
	Name     string   `json:"name"`
	Type     string   `json:"type"`  // service | oneshot
	State    string   `json:"state"` // INACTIVE, STARTING, READY_WAIT, ACTIVE, DEGRADED, FAILED, DONE, CYCLE, STOPPING
	Pid      int      `json:"pid"`   // 0 when no process is running
	UptimeMS int64    `json:"uptime_ms"`
	Restarts int      `json:"restarts"` // starts after the first
	Requires []string `json:"requires"`
	Provides []string `json:"provides"`
	Reason   string   `json:"reason"` // why it is FAILED, STOPPING or stopped; empty otherwise

	// The health checks of its latest process (docs/HEALTH.md). Health is
	// "" for a component without health checks, else unknown (no check
	// has ended yet), ok or failing.
	Health         string `json:"health"`
	HealthChecks   int    `json:"health_checks"`     // checks ended, since the process became ACTIVE
	HealthFailures int    `json:"health_failures"`   // consecutive failed checks
	LastCheckMSAgo int64  `json:"last_check_ms_ago"` // since the latest check ended; -1 when none has
	HealthReason   string `json:"health_reason"`     // why the latest check failed; "" if it passed

	// Isolation is set for a component with [resources] or [isolation]
	// (docs/ISOLATION.md).
	Isolation *IsolationStatus `json:"isolation,omitempty"`
}

// InspectData answers "inspect <component>".
type InspectData struct {
	Name      string           `json:"name"`
	State     string           `json:"state"`
	Pid       int              `json:"pid"` // 0 when no process is running
	Reason    string           `json:"reason"`
	Isolation *IsolationStatus `json:"isolation"` // null without [resources] or [isolation]
}

// IsolationStatus is a component's cgroup and namespaces, in status and
// inspect.
type IsolationStatus struct {
	Cgroup     string            `json:"cgroup"`      // absolute path of its group
	Limits     map[string]string `json:"limits"`      // control file → value written
	Usage      *CgroupUsage      `json:"usage"`       // nil while no process runs
	OOMKills   int64             `json:"oom_kills"`   // seen by the watcher since the first start
	Namespaces []string          `json:"namespaces"`  // created for it: ipc, mount, net, pid, user, uts
	Hostname   string            `json:"hostname"`    // in its uts namespace; "" if not set
	Root       string            `json:"root"`        // its root directory
	PrivateTmp bool              `json:"private_tmp"` // a tmpfs of its own on /tmp
}

// CgroupUsage is what a group uses now; -1 where its controller is off.
type CgroupUsage struct {
	MemoryCurrent int64 `json:"memory_current"`
	PidsCurrent   int64 `json:"pids_current"`
	CPUUsageUS    int64 `json:"cpu_usage_usec"`
	NrThrottled   int64 `json:"nr_throttled"`
	ThrottledUS   int64 `json:"throttled_usec"`
	OOMKills      int64 `json:"oom_kills"` // memory.events oom_kill of the current group
}

// CapsData answers "caps".
type CapsData struct {
	Capabilities []CapabilityStatus `json:"capabilities"`
}

// CapabilityStatus is one capability in CapsData.
type CapabilityStatus struct {
	Name      string   `json:"name"`
	Status    string   `json:"status"` // UP | DEGRADED | DOWN
	Providers []string `json:"providers"`
	// Since is when it last came up or went down (not in the text table,
	// whose columns are the reference's).
	Since time.Time `json:"since"`
}

// ActionData answers "poweroff" and "reboot".
type ActionData struct {
	Action string `json:"action"`
}

// LogData answers "log".
type LogData struct {
	Component string   `json:"component"`
	Path      string   `json:"path"`
	Lines     []string `json:"lines"` // oldest first, without newlines
}

// ResolveData answers "resolve".
type ResolveData struct {
	Reset   []string `json:"reset"`   // FAILED components whose restart count was reset
	Started []string `json:"started"` // components the pass started
	Failed  []string `json:"failed"`  // "name: reason" for starts that failed at once
}

// ReloadData answers "reload": component names by what the reload did.
type ReloadData struct {
	Unchanged []string `json:"unchanged"` // left running (or not) untouched
	Changed   []string `json:"changed"`   // restarted with the new declaration
	Removed   []string `json:"removed"`   // stopped and forgotten
	Added     []string `json:"added"`     // new, started when their requirements are up
	Kept      []string `json:"kept"`      // their file is now rejected: left as they were
	Rejected  []string `json:"rejected"`  // "file:line: message" for each rejected file
}

// ReadinessData answers "readiness": every component with a readiness
// method, and the counts of the summary line.
type ReadinessData struct {
	Components []ReadinessStatus `json:"components"`
	Ready      int               `json:"ready"`   // ACTIVE
	Waiting    int               `json:"waiting"` // READY_WAIT
	Failed     int               `json:"failed"`  // FAILED, timeouts included
}

// ReadinessStatus is one component in ReadinessData.
type ReadinessStatus struct {
	Name      string `json:"name"`
	Method    string `json:"method"` // file | command | notify | signal
	TimeoutMS int64  `json:"timeout_ms"`
	State     string `json:"state"`
	WaitingMS int64  `json:"waiting_ms"` // time in READY_WAIT so far; 0 otherwise
	// Status is the latest STATUS= line a notify service sent, if any.
	Status string `json:"status"`
	Reason string `json:"reason"` // why it is FAILED, e.g. the readiness timeout
}

// CheckReadinessData answers "check-readiness": the components whose
// readiness was probed at once.
type CheckReadinessData struct {
	Checked []string `json:"checked"`
}

// UpgradeData answers "upgrade": what was tried, in order, and how it went.
type UpgradeData struct {
	Component  string           `json:"component"`
	Binary     string           `json:"binary"`  // what the new instance runs
	OldPid     int              `json:"old_pid"` // the instance being replaced
	NewPid     int              `json:"new_pid"` // the instance serving now; 0 if none took over
	Attempts   []UpgradeAttempt `json:"attempts"`
	DurationMS float64          `json:"duration_ms"` // from the request to the outcome
}

// UpgradeAttempt is one method tried by "upgrade".
type UpgradeAttempt struct {
	Method     string  `json:"method"`  // criu | fd-passing | restart
	Outcome    string  `json:"outcome"` // ok | failed | skipped
	Detail     string  `json:"detail"`
	DurationMS float64 `json:"duration_ms"`
	FDs        int     `json:"fds,omitempty"`         // fd-passing: descriptors handed over
	StateBytes uint64  `json:"state_bytes,omitempty"` // fd-passing: size of the state blob
}

package control

// The Data of each command's Response, shared by graph-resolver (which fills
// it) and any program reading `graphctl --json` (which decodes it).

// StatusData answers "status".
type StatusData struct {
	Components []ComponentStatus `json:"components"`
}

// ComponentStatus is one component in StatusData.
type ComponentStatus struct {
	Name     string   `json:"name"`
	Type     string   `json:"type"`  // service | oneshot
	State    string   `json:"state"` // INACTIVE, STARTING, READY_WAIT, ACTIVE, DEGRADED, FAILED, DONE, STOPPING
	Pid      int      `json:"pid"`   // 0 when no process is running
	UptimeMS int64    `json:"uptime_ms"`
	Restarts int      `json:"restarts"` // starts after the first
	Requires []string `json:"requires"`
	Provides []string `json:"provides"`
	Reason   string   `json:"reason"` // why it is FAILED, STOPPING or stopped; empty otherwise
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
}

// ActionData answers "poweroff" and "reboot".
type ActionData struct {
	Action string `json:"action"`
}

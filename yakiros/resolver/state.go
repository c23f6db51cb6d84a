package resolver

// State is where a component is in its lifecycle.
type State int

// States, with the names status shows.
const (
	Inactive  State = iota // waiting for its requirements
	Starting               // process forked; a oneshot stays here until it exits
	ReadyWait              // running, waiting for its readiness signal
	Active                 // running and providing its capabilities
	Degraded               // running, failing health checks
	Failed                 // exited or could not start
	Done                   // oneshot that exited 0
	Stopping               // SIGTERM sent, waiting for the process to exit
)

var stateNames = [...]string{"INACTIVE", "STARTING", "READY_WAIT", "ACTIVE", "DEGRADED", "FAILED", "DONE", "STOPPING"}

func (s State) String() string { return stateNames[s] }

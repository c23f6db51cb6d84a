package resolver

// State is where a component is in its lifecycle.
type State int

// States, with the names status shows.
const (
	Inactive  State = iota // waiting for its requirements
	Starting               // a oneshot's process is running
	ReadyWait              // a service runs and has not yet reported ready
	Active                 // running and providing its capabilities
	Degraded               // running, failing health checks
	Failed                 // exited or could not start; may be waiting out a back-off
	Done                   // oneshot that exited 0
	Cycle                  // part of a dependency cycle: never started
	Stopping               // SIGTERM sent, waiting for the process to be reaped
)

var stateNames = [...]string{"INACTIVE", "STARTING", "READY_WAIT", "ACTIVE", "DEGRADED", "FAILED", "DONE", "CYCLE", "STOPPING"}

func (s State) String() string { return stateNames[s] }

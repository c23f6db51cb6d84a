package supervise

import "sync"

// Waiters hands exits back to whoever forked a helper process (a readiness
// or health check): PID 1's loop reaps every child with Reap, so a forker
// cannot wait for its own child and gets the exit through Exited instead.
// The zero value is ready to use.
type Waiters struct {
	mu sync.Mutex
	m  map[int]chan Exit
}

// Fork runs fork, which starts a process and returns its pid, and
// registers the pid under the same lock Exited takes, so the loop cannot
// report the exit of a pid not yet registered. The channel receives the
// exit once.
func (w *Waiters) Fork(fork func() (int, error)) (int, <-chan Exit, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	pid, err := fork()
	if err != nil {
		return 0, nil, err
	}
	if w.m == nil {
		w.m = map[int]chan Exit{}
	}
	ch := make(chan Exit, 1)
	w.m[pid] = ch
	return pid, ch, nil
}

// Exited claims e if its process was started by Fork. It blocks at most
// for a fork in progress.
func (w *Waiters) Exited(e Exit) bool {
	w.mu.Lock()
	ch, ok := w.m[e.Pid]
	delete(w.m, e.Pid)
	w.mu.Unlock()
	if ok {
		ch <- e // buffered; nobody else sends
	}
	return ok
}

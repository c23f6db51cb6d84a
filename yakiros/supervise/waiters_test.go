package supervise

import (
	"errors"
	"syscall"
	"testing"
)

// TestWaiters forks a real process through Waiters, reaps it as PID 1's
// loop does, and checks that the exit reaches the forker and only once.
func TestWaiters(t *testing.T) {
	var w Waiters
	pid, ch, err := w.Fork(func() (int, error) {
		return syscall.ForkExec("/bin/sh", []string{"/bin/sh", "-c", "exit 7"}, &syscall.ProcAttr{})
	})
	if err != nil {
		t.Fatal(err)
	}
	exits := reapUntil(t, pid)
	if w.Exited(Exit{Pid: pid + 1<<20}) {
		t.Error("Exited claimed a pid it never forked")
	}
	if !w.Exited(exits[pid]) {
		t.Fatal("Exited did not claim its own child")
	}
	if e := <-ch; e.Pid != pid || e.Status.ExitStatus() != 7 {
		t.Errorf("forker got %+v; want pid %d exit status 7", e, pid)
	}
	if w.Exited(exits[pid]) {
		t.Error("Exited claimed the same exit twice")
	}
	if _, _, err := w.Fork(func() (int, error) { return 0, errors.New("no fork") }); err == nil {
		t.Error("Fork hid the fork's error")
	}
}

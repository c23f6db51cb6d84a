package resolver

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"yakimg/yakiros/config"
	"yakimg/yakiros/control"
	"yakimg/yakiros/machine"
	"yakimg/yakiros/supervise"
)

// runLoop runs a loop over comps, without Main, so that the test can play
// a readiness watcher on l.readiness.
func (in *instance) runLoop(comps []config.Component) *loop {
	in.t.Helper()
	l := newLoop(&logger{w: in.log}, false, in.dir, supervise.NewLogs(in.logDir, 1<<20, in.t.Errorf), comps, nil)
	calls := make(chan *control.Call)
	srv, err := control.Listen(in.socket, calls, in.t.Logf)
	if err != nil {
		in.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in.cancel = cancel
	done := make(chan machine.Action, 1)
	go func() { done <- l.run(ctx, calls) }()
	in.t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			in.t.Errorf("the loop did not stop after its context was cancelled")
		}
		srv.Close()
	})
	return l
}

// A service with a readiness method waits in READY_WAIT, providing
// nothing, until a watcher reports it ready (only a report about its
// current process counts); a negative report or the readiness timeout
// fails it, its process stopped, and its restart policy applies.
func TestReadinessStates(t *testing.T) {
	in := newInstance(t)
	svc := func(name string, ready config.Readiness, requires, provides []string) config.Component {
		return config.Component{File: filepath.Join(in.dir, name+".toml"), Name: name, Binary: "/bin/sleep", Args: []string{"1000"},
			Type: config.Service, Readiness: ready, Requires: requires, Provides: provides}
	}
	l := in.runLoop([]config.Component{
		svc("waiter", config.Readiness{Method: config.ReadyFile, Timeout: time.Hour}, nil, []string{"cap.waiter"}),
		svc("after", config.Readiness{Method: config.ReadyNone}, []string{"cap.waiter"}, nil),
		svc("slow", config.Readiness{Method: config.ReadyCommand, Timeout: 500 * time.Millisecond}, nil, nil),
		svc("refused", config.Readiness{Method: config.ReadyNotify, Timeout: time.Hour}, nil, nil),
	})
	st := in.waitFor("READY_WAIT", states(map[string]string{"waiter": "READY_WAIT", "refused": "READY_WAIT", "after": "INACTIVE"}))
	waiter, refused := find(st, "waiter").Pid, find(st, "refused").Pid

	l.readiness <- readinessReport{name: "waiter", pid: waiter + 100000} // about another process
	l.readiness <- readinessReport{name: "nobody", pid: waiter}
	if c := find(in.waitFor("status", states(nil)), "waiter"); c.State != "READY_WAIT" {
		t.Errorf("waiter after reports about other processes = %+v; want READY_WAIT", c)
	}
	l.readiness <- readinessReport{name: "waiter", pid: waiter}
	st = in.waitFor("waiter ready", states(map[string]string{"waiter": "ACTIVE", "after": "ACTIVE"}))
	if c := find(st, "waiter"); c.Pid != waiter {
		t.Errorf("waiter = %+v; want the same process, now ACTIVE", c)
	}

	l.readiness <- readinessReport{name: "refused", pid: refused, err: errors.New("READY=0 and a status of doom")}
	st = in.waitFor("refused and slow to fail", states(map[string]string{"refused": "FAILED", "slow": "FAILED"}))
	if c := find(st, "refused"); c.Reason != "readiness check failed: READY=0 and a status of doom" || !gone(refused) {
		t.Errorf("refused = %+v (process gone: %v)", c, gone(refused))
	}
	if c := find(st, "slow"); c.Reason != "readiness timeout after 500ms" || c.Pid != 0 {
		t.Errorf("slow = %+v; want FAILED after its readiness timeout", c)
	}
	for _, want := range []string{
		"component 'waiter' waiting for readiness (file, timeout 1h0m0s)",
		"component 'waiter' is ready (waited ",
		"stopping component 'slow' (pid ",
	} {
		if !strings.Contains(in.log.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if _, err := os.Stat(filepath.Join(in.logDir, "slow.log")); err != nil {
		t.Errorf("slow.log: %v", err)
	}
}

package resolver

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"yakimg/yakiros/checkpoint"
	"yakimg/yakiros/control"
)

// The store commands over the control socket, on a store with real files,
// and checkpoint and restore refusing honestly where criu is missing: the
// running service is left as it was. (Dump and restore themselves are
// proven in the guest by the checkpointing suite.)
func TestCheckpointCommands(t *testing.T) {
	old := checkpointDir
	checkpointDir = t.TempDir()
	t.Cleanup(func() { checkpointDir = old })
	store := checkpoint.Store{Dir: checkpointDir}
	seal := func(comp string, at time.Time) string {
		id, err := store.Create(comp, at)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{"pstree.img", "core-7.img", "mm-7.img"} {
			os.WriteFile(filepath.Join(store.Path(comp, id), n), []byte(n), 0o600)
		}
		m := checkpoint.Metadata{ComponentName: comp, ID: id, OriginalPid: 7, Timestamp: at.Unix(), LeaveRunning: true}
		if err := store.Seal(&m); err != nil {
			t.Fatal(err)
		}
		return id
	}
	oldID := seal("echo", time.Now().Add(-48*time.Hour))
	newID := seal("echo", time.Now())

	in := newInstance(t)
	addr := freeAddr(t)
	decl(t, in.dir, "echo.toml", "echo", "service", echoServer, []string{"--listen", addr}, nil, []string{"echo"})
	in.start()
	in.waitFor("echo ACTIVE", states(map[string]string{"echo": "ACTIVE"}))

	code, out, stderr := in.ctl("--json", "checkpoint-list", "echo")
	var l control.CheckpointListData
	if code != 0 || json.Unmarshal([]byte(out), &l) != nil || len(l.Checkpoints) != 2 || l.Checkpoints[0].ID != newID || l.Checkpoints[1].ID != oldID {
		t.Fatalf("checkpoint-list: %d %s %s", code, out, stderr)
	}
	if code, out, _ := in.ctl("checkpoint-list"); code != 0 || !strings.Contains(out, newID+": echo (") {
		t.Errorf("checkpoint-list text: %d %q", code, out)
	}
	var u control.CheckpointUsageData
	code, out, _ = in.ctl("--json", "checkpoint-usage")
	if code != 0 || json.Unmarshal([]byte(out), &u) != nil || u.Checkpoints != 2 || len(u.Components) != 1 || u.Bytes == 0 {
		t.Errorf("checkpoint-usage: %d %s", code, out)
	}
	var c control.CheckpointCleanupData
	code, out, _ = in.ctl("--json", "checkpoint-cleanup", "--max-age", "1d")
	if code != 0 || json.Unmarshal([]byte(out), &c) != nil || len(c.Removed) != 1 || c.Removed[0].ID != oldID {
		t.Errorf("checkpoint-cleanup --max-age 1d: %d %s", code, out)
	}
	if code, _, stderr := in.ctl("checkpoint-cleanup", "--max-age", "never"); code != 1 || !strings.Contains(stderr, "invalid max age") {
		t.Errorf("bad --max-age: %d %q", code, stderr)
	}
	if code, _, stderr := in.ctl("checkpoint-rm", "echo", oldID); code != 1 || !strings.Contains(stderr, "no checkpoint") {
		t.Errorf("rm of a removed checkpoint: %d %q", code, stderr)
	}
	if code, _, _ := in.ctl("checkpoint-rm", "echo", newID); code != 0 {
		t.Errorf("rm: %d", code)
	}
	if code, _, stderr := in.ctl("checkpoint", "nothing"); code != 1 || !strings.Contains(stderr, "no component 'nothing'") {
		t.Errorf("checkpoint of an unknown component: %d %q", code, stderr)
	}
	if code, _, stderr := in.ctl("checkpoint", "--stop", "nothing"); code != 1 || !strings.Contains(stderr, "no component 'nothing'") {
		t.Errorf("checkpoint --stop of an unknown component: %d %q", code, stderr)
	}
	for _, args := range [][]string{{"checkpoint"}, {"checkpoint", "a", "b"}, {"checkpoint", "a", "--bogus"}, {"restore"}, {"checkpoint-rm", "echo"}} {
		if code, _, stderr := in.ctl(args...); code != 1 || !strings.Contains(stderr, "usage") {
			t.Errorf("%q: %d %q; want a usage error", args, code, stderr)
		}
	}

	if _, err := checkpoint.Find(); err == nil {
		t.Skip("criu is installed here: the refusals below need a host without it")
	}
	pid := find(in.waitFor("echo ACTIVE", states(map[string]string{"echo": "ACTIVE"})), "echo").Pid
	if code, _, stderr := in.ctl("checkpoint", "echo"); code != 1 || !strings.Contains(stderr, "CRIU is not installed") {
		t.Errorf("checkpoint without criu: %d %q", code, stderr)
	}
	seal("echo", time.Now())
	if code, _, stderr := in.ctl("restore", "echo"); code != 1 || !strings.Contains(stderr, "refused") || !strings.Contains(stderr, "keeps running") {
		t.Errorf("restore without criu: %d %q", code, stderr)
	}
	if st := find(in.waitFor("echo ACTIVE", states(map[string]string{"echo": "ACTIVE"})), "echo"); st.Pid != pid {
		t.Errorf("echo's pid changed from %d to %d", pid, st.Pid)
	}

	// Down (killed, and restart_max 0 keeps it down), a refused restore
	// starts it fresh at once rather than leaving it FAILED.
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	in.waitFor("echo FAILED", states(map[string]string{"echo": "FAILED"}))
	if code, _, stderr := in.ctl("restore", "echo"); code != 1 || !strings.Contains(stderr, "refused") || !strings.Contains(stderr, "starting it fresh") {
		t.Errorf("restore of a down component without criu: %d %q; want a refusal starting it fresh", code, stderr)
	}
	if st := find(in.waitFor("echo ACTIVE again", states(map[string]string{"echo": "ACTIVE"})), "echo"); st.Pid == pid || st.Pid == 0 {
		t.Errorf("echo after the refused restore: pid %d; want a new process (the old was %d)", st.Pid, pid)
	}
}

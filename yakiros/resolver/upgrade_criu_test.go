package resolver

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"yakimg/yakiros/checkpoint"
	"yakimg/yakiros/control"
)

// fakeCRIU stands in for criu where a level of the fallback chain must
// fail on purpose (criu itself is proven in the guest by the checkpointing
// suite). Its behaviour is the word in the file mode: "dump-fails" leaves
// the process running and logs an error as criu does; otherwise dump ends
// the process with SIGKILL, as criu without --leave-running does, and
// writes an image; "restore-fails" then fails the restore, anything else
// starts a stand-in process, detached, and writes its pid to --pidfile.
const fakeCRIU = `#!/bin/sh
mode=$(cat "$(dirname "$0")/mode")
case "$1" in
check) exit 0 ;;
--version) echo "Version: 3.17.1"; exit 0 ;;
dump) # dump -t PID -D DIR ...
	if [ "$mode" = dump-fails ]; then
		echo "Error (criu/sk-unix.c:1): fake criu: cannot dump pid $3" > "$5/dump.log"
		exit 1
	fi
	kill -KILL "$3" && echo image > "$5/pages-1.img" ;;
restore) # restore -D DIR -o LOG -v4 --restore-detached --pidfile FILE ...
	if [ "$mode" = restore-fails ]; then
		echo "Error (criu/cr-restore.c:1): fake criu: cannot restore" > "$3/restore.log"
		exit 1
	fi
	sleep 1000 </dev/null >/dev/null 2>&1 &
	echo $! > "$9" ;;
*) exit 2 ;;
esac
`

// attempts renders an upgrade's attempts as "method outcome" pairs.
func attempts(d control.UpgradeData) string {
	var s []string
	for _, a := range d.Attempts {
		s = append(s, a.Method+" "+a.Outcome)
	}
	return strings.Join(s, ", ")
}

// The fallback chain of upgrade, each level made to fail in turn on
// services declared checkpointable: criu missing → CRIU skipped, fd
// passing fails (the old instance never answers) → a restart takes over;
// a dump that fails → the process runs on and fd passing takes over; a
// restore that fails → the old instance is gone, fd passing is skipped, a
// restart takes over; a restore that works → the restored process is the
// component's; --binary → CRIU skipped.
func TestUpgradeFallbackChain(t *testing.T) {
	// The stand-in "restored" process is orphaned by the fake criu: as a
	// subreaper the test process receives it, as PID 1 would.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatalf("PR_SET_CHILD_SUBREAPER: %v", err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	oldDir, oldFind := checkpointDir, findCRIU
	checkpointDir = t.TempDir()
	fake := filepath.Join(t.TempDir(), "criu")
	if err := os.WriteFile(fake, []byte(fakeCRIU), 0o755); err != nil {
		t.Fatal(err)
	}
	mode := func(m string) {
		if err := os.WriteFile(filepath.Join(filepath.Dir(fake), "mode"), []byte(m), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	criu := ""
	findCRIU = func() (string, error) {
		if criu == "" {
			return "", fmt.Errorf("%w (looked for %s)", checkpoint.ErrNoCRIU, fake)
		}
		return criu, nil
	}
	t.Cleanup(func() { checkpointDir, findCRIU = oldDir, oldFind })

	in := newInstance(t)
	addr := freeAddr(t)
	ckpt := []string{"restart_max = 0", "[checkpoint]", "enabled = true"}
	decl(t, in.dir, "chain.toml", "chain", "service", "/bin/sleep", []string{"1000"}, nil, []string{"test.chain"},
		append([]string{`handoff = "fd-passing"`}, ckpt...)...)
	decl(t, in.dir, "echo.toml", "echo", "service", echoServer, []string{"--listen", addr}, nil, []string{"test.echo"},
		append([]string{`handoff = "fd-passing"`, `readiness = "notify"`}, ckpt...)...)
	in.start()
	st := in.waitFor("chain and echo ACTIVE", states(map[string]string{"chain": "ACTIVE", "echo": "ACTIVE"}))
	chain := find(st, "chain").Pid
	dialable(t, addr)

	upgrade := func(want string, args ...string) control.UpgradeData {
		t.Helper()
		code, d, stderr := in.upgradeJSON(args...)
		if code != 0 || attempts(d) != want || d.NewPid == 0 {
			t.Fatalf("upgrade %q = %d, %q, %+v; want attempts %q\nlog:\n%s", args, code, stderr, d, want, in.log)
		}
		c := find(in.waitFor(args[0]+" ACTIVE", states(map[string]string{args[0]: "ACTIVE"})), args[0])
		if c.Pid != d.NewPid {
			t.Fatalf("after upgrade %q %s runs as pid %d; the reply says %d", args, args[0], c.Pid, d.NewPid)
		}
		for _, a := range d.Attempts {
			t.Logf("upgrade %s: %s %s: %s (%.1f ms)", args[0], a.Method, a.Outcome, a.Detail, a.DurationMS)
		}
		return d
	}
	detail := func(d control.UpgradeData, i int, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(d.Attempts[i].Detail, w) {
				t.Errorf("attempt %d detail %q lacks %q", i, d.Attempts[i].Detail, w)
			}
		}
	}

	// criu missing: the checkpoint commands say so, upgrade skips CRIU;
	// sleep never answers the handoff, so a restart runs the new code.
	if code, _, stderr := in.ctl("checkpoint", "chain"); code != 1 || !strings.Contains(stderr, "CRIU is not installed") {
		t.Errorf("checkpoint without criu = %d, %q", code, stderr)
	}
	d := upgrade("criu skipped, fd-passing failed, restart ok", "chain", "--timeout", "1s")
	detail(d, 0, "CRIU is not installed")
	detail(d, 1, "no handoff result in time")
	if d.OldPid != chain || d.NewPid == chain {
		t.Errorf("restart: pid %d → %d; want a new process for %d", d.OldPid, d.NewPid, chain)
	}

	// A dump that fails leaves the echo service running, and it hands
	// over: a client connected before the upgrade gets its answer after.
	criu = fake
	mode("dump-fails")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	echo := func(line string) string {
		t.Helper()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := fmt.Fprintln(conn, line); err != nil {
			t.Fatal(err)
		}
		reply, err := r.ReadString('\n')
		if err != nil || !strings.HasSuffix(reply, " "+line+"\n") {
			t.Fatalf("echo %q: %q, %v", line, reply, err)
		}
		return strings.Fields(reply)[0]
	}
	before := echo("before")
	d = upgrade("criu failed, fd-passing ok", "echo")
	detail(d, 0, "fake criu: cannot dump", "runs on")
	if after := echo("after"); after == before {
		t.Errorf("the same connection answers as %q before and after the upgrade; want the new instance", after)
	}

	// The dump ends the process, the restore fails: a restart.
	mode("restore-fails")
	old := d.NewPid
	d = upgrade("criu failed, fd-passing skipped, restart ok", "chain", "--timeout", "1s")
	detail(d, 0, "restore failed", "fake criu: cannot restore")
	detail(d, 1, "the old instance is gone")
	var l control.CheckpointListData
	if code, out, _ := in.ctl("--json", "checkpoint-list", "chain"); code != 0 || json.Unmarshal([]byte(out), &l) != nil || len(l.Checkpoints) != 1 {
		t.Errorf("checkpoint-list chain after the dump: %d %s; want the upgrade's checkpoint", code, out)
	}

	// A restore that works: the restored process is the component's.
	mode("restore-ok")
	d = upgrade("criu ok", "chain")
	detail(d, 0, "restored as pid "+strconv.Itoa(d.NewPid))
	if !gone(d.OldPid) {
		t.Errorf("the dumped process %d still exists", d.OldPid)
	}
	if err := syscall.Kill(d.NewPid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c := find(in.waitFor("chain FAILED", states(map[string]string{"chain": "FAILED"})), "chain")
	if !strings.Contains(c.Reason, "killed") {
		t.Errorf("after the restored process was killed chain is FAILED for %q", c.Reason)
	}

	// New code is never restored by CRIU.
	d = upgrade("criu skipped, fd-passing ok", "echo", "--binary", echoServer)
	detail(d, 0, "a new binary is given")
	if d.NewPid == old {
		t.Errorf("fd passing kept pid %d", old)
	}
}

package resolver

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"yakimg/yakiros/control"
)

// talker is a client of the echo service that sends numbered lines without
// pause and checks every reply: the same line back, in order, with a
// version. It records the versions it saw and its first error.
type talker struct {
	mu       sync.Mutex
	versions []string // in the order first seen
	replies  int
	err      error
}

func (tk *talker) run(addr string, id int, stop <-chan struct{}) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		tk.fail(err)
		return
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		default:
		}
		line := fmt.Sprintf("client-%d-line-%d", id, n)
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := conn.Write([]byte(line + "\n")); err != nil {
			tk.fail(fmt.Errorf("client %d: send %q: %w", id, line, err))
			return
		}
		reply, err := r.ReadString('\n')
		if err != nil {
			tk.fail(fmt.Errorf("client %d: reply to %q: %q, %w", id, line, reply, err))
			return
		}
		version, echoed, ok := strings.Cut(strings.TrimSuffix(reply, "\n"), " ")
		if !ok || echoed != line {
			tk.fail(fmt.Errorf("client %d: sent %q, got %q", id, line, reply))
			return
		}
		tk.saw(version)
	}
}

func (tk *talker) fail(err error) {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	if tk.err == nil {
		tk.err = err
	}
}

func (tk *talker) saw(version string) {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	tk.replies++
	if len(tk.versions) == 0 || tk.versions[len(tk.versions)-1] != version {
		tk.versions = append(tk.versions, version)
	}
}

// upgradeJSON runs graphctl --json upgrade and decodes its data.
func (in *instance) upgradeJSON(args ...string) (int, control.UpgradeData, string) {
	in.t.Helper()
	code, stdout, stderr := in.ctl(append([]string{"--json", "upgrade"}, args...)...)
	var d control.UpgradeData
	if stdout != "" {
		if err := json.Unmarshal([]byte(stdout), &d); err != nil {
			in.t.Fatalf("upgrade %q: stdout %q: %v", args, stdout, err)
		}
	}
	return code, d, stderr
}

// TestUpgrade upgrades a notify service declared with handoff =
// "fd-passing" three times while clients talk to it without pause, then
// tries two broken binaries, then upgrades a plain service by restart.
// capSince is when the capability last came up or went down, from
// `graphctl --json caps`.
func (in *instance) capSince(name string) time.Time {
	in.t.Helper()
	code, out, stderr := in.ctl("--json", "caps")
	var d control.CapsData
	if err := json.Unmarshal([]byte(out), &d); code != 0 || err != nil {
		in.t.Fatalf("caps = %d, %v, %q", code, err, stderr)
	}
	for _, c := range d.Capabilities {
		if c.Name == name && !c.Since.IsZero() {
			return c.Since
		}
	}
	in.t.Fatalf("caps has no %s with a since: %s", name, out)
	return time.Time{}
}

func TestUpgrade(t *testing.T) {
	in := newInstance(t)
	addr := freeAddr(t)
	decl(t, in.dir, "20-echo.toml", "echo", "service", echoServer, []string{"--listen", addr},
		nil, []string{"test.echo"}, `handoff = "fd-passing"`, `readiness = "notify"`)
	decl(t, in.dir, "30-plain.toml", "plain", "service", "/bin/sleep", []string{"1000"}, nil, []string{"test.plain"})
	bin := t.TempDir()
	crash, never := filepath.Join(bin, "crash-on-start"), filepath.Join(bin, "never-ready")
	for path, script := range map[string]string{crash: "#!/bin/sh\nexit 3\n", never: "#!/bin/sh\nexec sleep 1000\n"} {
		if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	in.start()
	first := find(in.waitFor("echo and plain ACTIVE", states(map[string]string{"echo": "ACTIVE", "plain": "ACTIVE"})), "echo")
	dialable(t, addr)

	const clients = 8
	stop := make(chan struct{})
	talkers := make([]*talker, clients)
	var wg sync.WaitGroup
	for i := range talkers {
		talkers[i] = &talker{}
		wg.Add(1)
		go func() { defer wg.Done(); talkers[i].run(addr, i, stop) }()
	}
	// Let every client get answers from the first instance.
	time.Sleep(200 * time.Millisecond)
	echoSince := in.capSince("test.echo")

	pid := first.Pid
	for round := 1; round <= 3; round++ {
		code, d, stderr := in.upgradeJSON("echo", "--timeout", "5s")
		if code != 0 || d.OldPid != pid || d.NewPid == 0 || d.NewPid == pid ||
			len(d.Attempts) != 1 || d.Attempts[0].Method != "fd-passing" || d.Attempts[0].Outcome != "ok" || d.Attempts[0].FDs < clients+1 {
			t.Fatalf("upgrade %d = %d, %+v, %q; want fd-passing ok from pid %d with the listener and %d connections\nlog:\n%s", round, code, d, stderr, pid, clients, in.log)
		}
		t.Logf("upgrade %d: pid %d → %d, %d fds, %d bytes of state, handoff %.1f ms, %.1f ms in all", round, d.OldPid, d.NewPid, d.Attempts[0].FDs, d.Attempts[0].StateBytes, d.Attempts[0].DurationMS, d.DurationMS)
		st, err := in.status()
		if c := find(st, "echo"); err != nil || c.State != "ACTIVE" || c.Pid != d.NewPid {
			t.Fatalf("after upgrade %d echo = %+v, %v; want ACTIVE as pid %d", round, c, err, d.NewPid)
		}
		pid = d.NewPid
		time.Sleep(100 * time.Millisecond) // replies from the new instance
	}

	for _, bad := range []struct{ binary, want string }{
		{crash, "exited with status 3"},
		{never, "keeps serving"},
	} {
		code, d, stderr := in.upgradeJSON("echo", "--binary", bad.binary, "--timeout", "1s")
		if code != 1 || !strings.Contains(stderr, bad.want) || !strings.Contains(stderr, "keeps serving") || d.NewPid != 0 {
			t.Errorf("upgrade to %s = %d, %+v, %q; want a failure saying %q and that the old instance keeps serving", bad.binary, code, d, stderr, bad.want)
		}
		st, _ := in.status()
		if c := find(st, "echo"); c.State != "ACTIVE" || c.Pid != pid {
			t.Errorf("after the failed upgrade to %s echo = %+v; want ACTIVE, still pid %d", bad.binary, c, pid)
		}
	}

	close(stop)
	wg.Wait()
	for i, tk := range talkers {
		if tk.err != nil {
			t.Errorf("client %d: %v", i, tk.err)
		}
		if len(tk.versions) < 2 {
			t.Errorf("client %d saw versions %q; want the replies to switch with the upgrades", i, tk.versions)
		}
		t.Logf("client %d: %d replies, versions %q", i, tk.replies, tk.versions)
	}
	_, caps, _ := in.ctl("caps")
	if !regexp.MustCompile(`(?m)^test\.echo\s+UP`).MatchString(caps) {
		t.Errorf("caps after the upgrades:\n%s\nwant test.echo UP", caps)
	}
	if since := in.capSince("test.echo"); !since.Equal(echoSince) {
		t.Errorf("test.echo is up since %v after the upgrades, since %v before; want it never down", since, echoSince)
	}

	// A service without handoff is upgraded by a restart: its capability
	// goes down and comes up again.
	plain := find(in.waitFor("plain ACTIVE", states(map[string]string{"plain": "ACTIVE"})), "plain")
	plainSince := in.capSince("test.plain")
	code, d, stderr := in.upgradeJSON("plain")
	if code != 0 || len(d.Attempts) != 2 || d.Attempts[0].Outcome != "skipped" || d.Attempts[1].Method != "restart" ||
		d.Attempts[1].Outcome != "ok" || d.NewPid == plain.Pid {
		t.Errorf("upgrade of plain = %d, %+v, %q; want fd-passing skipped, restart ok with a new pid", code, d, stderr)
	}
	if since := in.capSince("test.plain"); !since.After(plainSince) {
		t.Errorf("test.plain is up since %v after a restart, since %v before; want later", since, plainSince)
	}

	// Bad requests change nothing.
	for _, args := range [][]string{{"nosuch"}, {"echo", "--binary", "/nonexistent"}, {"echo", "--timeout", "0s"}, {}} {
		if code, _, stderr := in.ctl(append([]string{"upgrade"}, args...)...); code != 1 || stderr == "" {
			t.Errorf("upgrade %q = %d, %q; want an error", args, code, stderr)
		}
	}
}

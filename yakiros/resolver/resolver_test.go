package resolver

// These tests run graph-resolver in test mode inside the test process. Its
// reaper calls wait4(-1), which collects any child of this process, so no
// test here may run in parallel or start processes of its own while Main runs.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"yakimg/yakiros/control"
	"yakimg/yakiros/graphctl"
	"yakimg/yakiros/health"
)

// echoServer is the real test-echo-server, built once before any test.
var echoServer string

func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == health.RunnerName { // PID 1's command checks run in this binary
		os.Exit(health.RunnerMain())
	}
	if len(os.Args) > 1 && os.Args[1] == notifyHelper {
		os.Exit(notifyService(os.Args[2:]))
	}
	dir, err := os.MkdirTemp("", "resolver-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	echoServer = filepath.Join(dir, "test-echo-server")
	if out, err := exec.Command("go", "build", "-o", echoServer, "yakimg/testbins/test-echo-server").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build test-echo-server: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// lockedBuffer collects graph-resolver's log while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// instance is one graph-resolver running in test mode.
type instance struct {
	t      *testing.T
	dir    string // config dir
	logDir string
	socket string
	notify string // notify socket
	log    *lockedBuffer
	done   chan int
	cancel context.CancelFunc
	pids   map[int]bool // every component process seen, killed if left over
	extra  []string     // more graph-resolver flags
}

// decl writes a component declaration into the config dir. lifecycle
// lines go into [lifecycle]; unless they set restart_max, the component is
// never restarted (restart_max = 0), so that a test's failures stay failed.
func decl(t testing.TB, dir, file, name, typ, binary string, args, requires, provides []string, lifecycle ...string) {
	t.Helper()
	q := func(list []string) string {
		b, _ := json.Marshal(list)
		if list == nil {
			return "[]"
		}
		return string(b)
	}
	if !slices.ContainsFunc(lifecycle, func(l string) bool { return strings.HasPrefix(l, "restart_max") }) {
		lifecycle = append(lifecycle, "restart_max = 0")
	}
	text := fmt.Sprintf("[component]\nname = %q\nbinary = %q\nargs = %s\ntype = %q\n\n[requires]\ncapabilities = %s\n\n[provides]\ncapabilities = %s\n\n[lifecycle]\n%s\n",
		name, binary, q(args), typ, q(requires), q(provides), strings.Join(lifecycle, "\n"))
	if err := os.WriteFile(filepath.Join(dir, file), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func newInstance(t *testing.T) *instance {
	root := t.TempDir()
	in := &instance{
		t:      t,
		dir:    filepath.Join(root, "graph.d"),
		logDir: filepath.Join(root, "log"),
		socket: filepath.Join(root, "ctl.sock"),
		notify: filepath.Join(root, "run", "notify.sock"),
		log:    &lockedBuffer{},
		done:   make(chan int, 1),
		pids:   map[int]bool{},
	}
	if err := os.Mkdir(in.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return in
}

// start runs Main and waits until the control socket answers.
func (in *instance) start() {
	in.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	in.cancel = cancel
	args := append([]string{"--config-dir", in.dir, "--control-socket", in.socket, "--notify-socket", in.notify,
		"--log-dir", in.logDir}, in.extra...)
	go func() { in.done <- Main(ctx, args, nil, &bytes.Buffer{}, in.log) }()
	in.t.Cleanup(func() {
		cancel()
		select {
		case <-in.done:
		case <-time.After(30 * time.Second):
			in.t.Errorf("graph-resolver did not stop after its context was cancelled")
		}
		// A failed test must not leave processes behind.
		for pid := range in.pids {
			if !gone(pid) {
				syscall.Kill(-pid, syscall.SIGKILL)
			}
		}
	})
	in.waitFor("the control socket", func(control.StatusData) bool { return true })
}

// ctl runs graphctl against the instance.
func (in *instance) ctl(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = graphctl.Main(context.Background(), append([]string{"--socket", in.socket}, args...), nil, &out, &errOut)
	return code, out.String(), errOut.String()
}

func (in *instance) status() (control.StatusData, error) {
	var st control.StatusData
	resp, err := control.Do(context.Background(), in.socket, control.Request{Command: "status"})
	if err != nil {
		return st, err
	}
	if !resp.OK {
		return st, errors.New(resp.Error)
	}
	err = json.Unmarshal(resp.Data, &st)
	for _, c := range st.Components {
		if c.Pid > 0 {
			in.pids[c.Pid] = true
		}
	}
	return st, err
}

// waitFor polls status until cond holds.
func (in *instance) waitFor(what string, cond func(control.StatusData) bool) control.StatusData {
	in.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := in.status()
		if err == nil && cond(st) {
			return st
		}
		select {
		case code := <-in.done:
			in.t.Fatalf("waiting for %s: graph-resolver returned %d\nlog:\n%s", what, code, in.log)
		default:
		}
		if time.Now().After(deadline) {
			in.t.Fatalf("waiting for %s: last status %+v, %v\nlog:\n%s", what, st, err, in.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wait returns Main's exit status once it has returned.
func (in *instance) wait() int {
	in.t.Helper()
	select {
	case code := <-in.done:
		in.done <- code // for the cleanup
		return code
	case <-time.After(30 * time.Second):
		in.t.Fatalf("graph-resolver did not return\nlog:\n%s", in.log)
		return -1
	}
}

func find(st control.StatusData, name string) control.ComponentStatus {
	for _, c := range st.Components {
		if c.Name == name {
			return c
		}
	}
	return control.ComponentStatus{}
}

func states(want map[string]string) func(control.StatusData) bool {
	return func(st control.StatusData) bool {
		for name, state := range want {
			if find(st, name).State != state {
				return false
			}
		}
		return true
	}
}

// gone reports whether pid no longer exists (not even as a zombie).
func gone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestEndToEnd(t *testing.T) {
	in := newInstance(t)
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("needs sleep(1)")
	}
	fifo := filepath.Join(t.TempDir(), "flaky.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	decl(t, in.dir, "10-prepare.toml", "prepare", "oneshot", "/bin/sh",
		[]string{"-c", "sleep 0.2"}, []string{"filesystem.run"}, []string{"test.prepared"})
	decl(t, in.dir, "20-echo.toml", "echo", "service", echoServer,
		[]string{"--listen", addr, "--version", "v9"}, []string{"test.prepared"}, []string{"test.echo"})
	decl(t, in.dir, "30-flaky.toml", "flaky", "service", "/bin/sh",
		[]string{"-c", `read line < "$0"; exit 3`, fifo}, nil, []string{"test.flaky"})
	decl(t, in.dir, "40-dependent.toml", "dependent", "service", sleep,
		[]string{"1000"}, []string{"test.flaky"}, []string{"test.dependent"})
	decl(t, in.dir, "50-broken.toml", "broken", "service", "/nonexistent/binary", nil, nil, nil)
	decl(t, in.dir, "60-waiting.toml", "waiting", "service", sleep,
		[]string{"1000"}, []string{"never.provided"}, nil)
	if err := os.WriteFile(filepath.Join(in.dir, "70-bad.toml"), []byte("[component]\nname = \"bad\"\nbinary = \"/bin/true\"\nrestart = \"always\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	in.start()

	st := in.waitFor("the graph to come up", states(map[string]string{
		"kernel": "ACTIVE", "prepare": "DONE", "echo": "ACTIVE", "flaky": "ACTIVE",
		"dependent": "ACTIVE", "broken": "FAILED", "waiting": "INACTIVE",
	}))

	// A rejected file is reported and the rest came up anyway.
	if want := "rejected: " + filepath.Join(in.dir, "70-bad.toml") + `:4: unknown key "restart" in [component]`; !strings.Contains(in.log.String(), want) {
		t.Errorf("log lacks %q", want)
	}
	if c := find(st, "broken"); c.Reason != "exec /nonexistent/binary: no such file or directory" || c.Pid != 0 {
		t.Errorf("broken = %+v; want FAILED with the exec error and no pid", c)
	}

	// The status data.
	echo := find(st, "echo")
	if echo.Type != "service" || echo.Pid <= 0 || echo.Restarts != 0 ||
		strings.Join(echo.Requires, ",") != "test.prepared" || strings.Join(echo.Provides, ",") != "test.echo" {
		t.Errorf("status data for echo = %+v", echo)
	}
	if k := st.Components[0]; k.Name != "kernel" || k.Pid != 0 || k.UptimeMS != 0 || len(k.Requires) != 0 || len(k.Provides) != 8 {
		t.Errorf("first component = %+v; want the kernel pseudo-component providing 8 capabilities", k)
	}
	if p := find(st, "prepare"); p.Type != "oneshot" || p.Pid != 0 || p.UptimeMS != 0 {
		t.Errorf("prepare = %+v; want a finished oneshot without pid", p)
	}

	// The service really runs, and its log starts with the header.
	conn, err := net.Dial("tcp", dialable(t, addr))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "hello\n")
	reply, err := bufio.NewReader(conn).ReadString('\n')
	conn.Close()
	if reply != "v9 hello\n" {
		t.Errorf("echo replied %q, %v; want %q", reply, err, "v9 hello\n")
	}
	// The server's output reaches the log through a pipe PID 1 relays, so
	// it may trail the reply: wait for its line, then check the order.
	logText := waitText(t, "echo.log", "listening on "+addr, readFile(filepath.Join(in.logDir, "echo.log")))
	header := regexp.MustCompile(fmt.Sprintf(`^\[\d+\] Starting component 'echo' \(pid %d\)\n.*listening on %s`, echo.Pid, regexp.QuoteMeta(addr)))
	if !header.MatchString(logText) {
		t.Errorf("echo.log =\n%s\nwant the start header first, then the server's own output", logText)
	}

	// The status layout.
	code, out, errOut := in.ctl("status")
	if code != 0 || errOut != "" {
		t.Fatalf("graphctl status = %d, stderr %q", code, errOut)
	}
	rule := strings.Repeat("─", 76)
	// Rows of running components: pid and uptime vary, widths do not.
	// None has a health check: HEALTH and LAST CHECK are "-".
	row := func(name, state string) string {
		return fmt.Sprintf(`%-20s %-10s \d[\d ]{6} \d[\ds ]{6} 0        -        -`, name, state)
	}
	wantStatus := "^" + strings.Join([]string{
		"COMPONENT            STATE      PID     UPTIME  RESTARTS HEALTH   LAST CHECK",
		rule,
		`kernel               ACTIVE     -       0s      0        -        -`,
		`prepare              DONE       -       -       0        -        -`,
		row("echo", "ACTIVE"),
		row("flaky", "ACTIVE"),
		row("dependent", "ACTIVE"),
		`broken               FAILED     -       0s      0        -        -`,
		`waiting              INACTIVE   -       0s      0        -        -`,
		rule,
		"Summary: 5 active, 0 degraded, 0 starting, 1 failed, 7 total",
	}, "\n") + "\n$"
	if !regexp.MustCompile(wantStatus).MatchString(out) {
		t.Errorf("graphctl status =\n%s\nwant the layout\n%s", out, wantStatus)
	}

	// caps, as text and as JSON.
	code, out, _ = in.ctl("caps")
	for _, want := range []string{
		"CAPABILITY                     STATUS  PROVIDER\n" + strings.Repeat("─", 58) + "\n",
		"filesystem.run                 UP      kernel\n",
		"test.echo                      UP      echo\n",
		"test.prepared                  UP      prepare\n",
		"Total: 12 capabilities (12 up, 0 down)\n",
	} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("graphctl caps = %d\n%s\nwant it to contain %q", code, out, want)
		}
	}
	code, out, _ = in.ctl("--json", "caps")
	var caps control.CapsData
	if err := json.Unmarshal([]byte(out), &caps); code != 0 || err != nil || len(caps.Capabilities) != 12 {
		t.Errorf("graphctl --json caps = %d, %v\n%s", code, err, out)
	}

	// Errors exit non-zero with the message on stderr.
	code, out, errOut = in.ctl("bogus", "x")
	if code == 0 || out != "" || !strings.Contains(errOut, "Unknown command: bogus x\nAvailable commands: status, caps") {
		t.Errorf("graphctl bogus = %d, stdout %q, stderr %q; want non-zero and the command list", code, out, errOut)
	}
	if code, _, errOut = in.ctl("status", "extra"); code == 0 || !strings.Contains(errOut, "status takes no arguments") {
		t.Errorf("graphctl status extra = %d, stderr %q; want an error", code, errOut)
	}

	// A service that exits is FAILED, its capability goes down, and the
	// service requiring it is stopped.
	dependentPid := find(st, "dependent").Pid
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.WriteString("exit\n")
	w.Close()
	st = in.waitFor("flaky to fail", states(map[string]string{"flaky": "FAILED", "dependent": "INACTIVE"}))
	if c := find(st, "flaky"); c.Reason != "exited with status 3" || c.Pid != 0 {
		t.Errorf("flaky = %+v; want FAILED, exited with status 3", c)
	}
	if c := find(st, "dependent"); c.Reason != "requirement 'test.flaky' is down" || c.Pid != 0 {
		t.Errorf("dependent = %+v; want INACTIVE because test.flaky is down", c)
	}
	if !gone(dependentPid) {
		t.Errorf("dependent's process %d still exists after it was stopped", dependentPid)
	}
	_, out, _ = in.ctl("caps")
	for _, want := range []string{"test.flaky                     DOWN    -\n", "test.dependent                 DOWN    -\n", "Total: 12 capabilities (10 up, 2 down)\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("graphctl caps after flaky failed =\n%s\nwant it to contain %q", out, want)
		}
	}

	// poweroff stops everything and, in test mode, makes Main return 0.
	code, out, errOut = in.ctl("poweroff")
	if code != 0 || out != "Powering off\n" {
		t.Errorf("graphctl poweroff = %d, %q, %q", code, out, errOut)
	}
	if code := in.wait(); code != 0 {
		t.Errorf("Main returned %d after poweroff; want 0", code)
	}
	if !gone(echo.Pid) {
		t.Errorf("echo's process %d still exists after poweroff", echo.Pid)
	}
	if _, err := os.Stat(in.socket); !os.IsNotExist(err) {
		t.Errorf("control socket left behind: %v", err)
	}
	if code, _, errOut := in.ctl("status"); code == 0 || !strings.Contains(errOut, "control socket "+in.socket+" does not exist") {
		t.Errorf("graphctl status after poweroff = %d, %q; want a connect error", code, errOut)
	}
}

// dialable waits until something listens on addr (ACTIVE means exec'd, not
// listening) and returns addr.
func dialable(t *testing.T, addr string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.Dial("tcp", addr)
		if err == nil {
			conn.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SIGTERM stops components in reverse dependency order, and one that
// ignores SIGTERM is killed after the grace period.
func TestShutdownOrder(t *testing.T) {
	in := newInstance(t)
	tmp := t.TempDir()
	order := filepath.Join(tmp, "order")
	// Records its name when asked to stop ("wait" lets the trap run at
	// once); $1.$0 tells the test the trap is set.
	polite := []string{"-c", `trap 'echo "$0" >> "$1"; exit 0' TERM; : > "$1.$0"; while :; do sleep 0.05 & wait $!; done`}
	decl(t, in.dir, "a.toml", "base", "service", "/bin/sh", append(polite, "base", order), nil, []string{"cap.base"})
	decl(t, in.dir, "b.toml", "middle", "service", "/bin/sh", append(polite, "middle", order), []string{"cap.base"}, []string{"cap.middle"})
	decl(t, in.dir, "c.toml", "top", "service", "/bin/sh", append(polite, "top", order), []string{"cap.middle"}, nil)
	decl(t, in.dir, "d.toml", "stubborn", "service", "/bin/sh",
		[]string{"-c", `trap '' TERM; : > "$1.$0"; while :; do sleep 0.05; done`, "stubborn", order}, nil, nil)
	in.start()
	st := in.waitFor("all services", states(map[string]string{
		"base": "ACTIVE", "middle": "ACTIVE", "top": "ACTIVE", "stubborn": "ACTIVE",
	}))
	for _, name := range []string{"base", "middle", "top", "stubborn"} {
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if _, err := os.Stat(order + "." + name); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never set its trap", name)
			}
		}
	}

	// The loop is running, so its signal handler is installed.
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := in.wait(); code != 0 {
		t.Errorf("Main returned %d after SIGTERM; want 0", code)
	}
	got, err := os.ReadFile(order)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "top\nmiddle\nbase\n" {
		t.Errorf("stop order = %q; want top, middle, base (dependents first)", got)
	}
	stubborn := find(st, "stubborn").Pid
	if want := fmt.Sprintf("component 'stubborn' (pid %d) ignored SIGTERM for 3s; sending SIGKILL", stubborn); !strings.Contains(in.log.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, in.log)
	}
	for _, c := range st.Components {
		if c.Pid != 0 && !gone(c.Pid) {
			t.Errorf("%s's process %d still exists after shutdown", c.Name, c.Pid)
		}
	}
}

// Cancelling Main's context shuts down like poweroff; reboot is accepted
// the same way.
func TestRebootAndContext(t *testing.T) {
	in := newInstance(t)
	decl(t, in.dir, "a.toml", "idle", "service", echoServer, []string{"--listen", freeAddr(t)}, nil, nil)
	in.start()
	st := in.waitFor("idle", states(map[string]string{"idle": "ACTIVE"}))
	code, out, _ := in.ctl("--json", "reboot")
	if code != 0 || out != "{\n  \"action\": \"reboot\"\n}\n" {
		t.Errorf("graphctl --json reboot = %d, %q", code, out)
	}
	if code := in.wait(); code != 0 || !gone(find(st, "idle").Pid) {
		t.Errorf("after reboot: Main = %d, idle gone = %v", code, gone(find(st, "idle").Pid))
	}

	in = newInstance(t)
	decl(t, in.dir, "a.toml", "idle", "service", echoServer, []string{"--listen", freeAddr(t)}, nil, nil)
	in.start()
	st = in.waitFor("idle", states(map[string]string{"idle": "ACTIVE"}))
	in.cancel()
	if code := in.wait(); code != 0 || !gone(find(st, "idle").Pid) {
		t.Errorf("after cancel: Main = %d, idle gone = %v", code, gone(find(st, "idle").Pid))
	}
}

func TestMainUsage(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		code     int
		out, err string
	}{
		{[]string{"--help"}, 0, "Usage: graph-resolver", ""},
		{[]string{"--bogus"}, 2, "", "graph-resolver: flag provided but not defined: -bogus\n\nUsage:"},
		{[]string{"extra"}, 2, "", "graph-resolver: unexpected argument \"extra\""},
	} {
		var out, errOut bytes.Buffer
		code := Main(context.Background(), tc.args, nil, &out, &errOut)
		if code != tc.code || !strings.HasPrefix(out.String(), tc.out) || !strings.HasPrefix(errOut.String(), tc.err) {
			t.Errorf("Main(%q) = %d, stdout %q, stderr %q; want %d, %q…, %q…", tc.args, code, out.String(), errOut.String(), tc.code, tc.out, tc.err)
		}
	}
}

// A second graph-resolver on the same socket refuses to run.
func TestSocketInUse(t *testing.T) {
	in := newInstance(t)
	in.start()
	var errOut lockedBuffer
	code := Main(context.Background(), []string{"--config-dir", in.dir, "--control-socket", in.socket,
		"--notify-socket", in.notify, "--log-dir", in.logDir}, nil, &bytes.Buffer{}, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "another server is answering on it") {
		t.Errorf("second Main on a live socket = %d, log:\n%s", code, errOut.String())
	}
	if _, err := in.status(); err != nil {
		t.Errorf("first instance after the second gave up: %v", err)
	}
	if fi, err := os.Stat(in.notify); err != nil || fi.Mode().Type() != os.ModeSocket {
		t.Errorf("first instance's notify socket after the second gave up: %v, %v", fi, err)
	}
}

// Processes orphaned by components come to the same reaper and are logged.
func TestReapsOrphans(t *testing.T) {
	// Test mode is not PID 1; as a subreaper the test process receives
	// the orphans PID 1 would.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatalf("PR_SET_CHILD_SUBREAPER: %v", err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	in := newInstance(t)
	pidFile := filepath.Join(t.TempDir(), "orphan.pid")
	decl(t, in.dir, "a.toml", "spawner", "oneshot", "/bin/sh",
		[]string{"-c", `sleep 1000 & echo $! > "$0.tmp" && mv "$0.tmp" "$0"`, pidFile}, nil, nil)
	in.start()
	in.waitFor("spawner", states(map[string]string{"spawner": "DONE"}))
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	orphan, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(orphan, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("reaped orphan pid %d (killed by signal 9 (killed))", orphan)
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(in.log.String(), want); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("log lacks %q:\n%s", want, in.log)
		}
	}
	if !gone(orphan) {
		t.Errorf("orphan %d still exists (a zombie nobody reaped?)", orphan)
	}
}

// graph-resolver as a real PID 1, in new PID and mount namespaces and a
// chroot on a tmpfs: it mounts the kernel filesystems, runs the graph, and
// a component's "graphctl poweroff" stops everything, unmounts and ends in
// reboot(POWER_OFF), which the kernel turns into SIGINT for a namespace's
// init.
func TestAsPID1(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates namespaces and mounts")
	}
	for _, tool := range []string{"unshare", "chroot", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s(8): %v", tool, err)
		}
	}
	stage, root := t.TempDir(), t.TempDir()
	// Teardown unmounts /out inside the namespace and, were that to fail,
	// would remount its filesystem read-only: it must be a throwaway tmpfs,
	// never the host's disk.
	out := t.TempDir()
	if err := unix.Mount("tmpfs", out, "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", out, err)
	}
	defer unix.Unmount(out, unix.MNT_DETACH)

	for bin, pkg := range map[string]string{
		"sbin/graph-resolver":            "yakimg/cmd/graph-resolver",
		"usr/bin/graphctl":               "yakimg/cmd/graphctl",
		"usr/local/bin/test-echo-server": "yakimg/testbins/test-echo-server",
	} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(stage, bin), pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	graphd := filepath.Join(stage, "etc/graph.d")
	if err := os.MkdirAll(graphd, 0o755); err != nil {
		t.Fatal(err)
	}
	decl(t, graphd, "10-echo.toml", "echo", "service", "/usr/local/bin/test-echo-server",
		[]string{"--listen", freeAddr(t)}, []string{"filesystem.run"}, []string{"test.echo"})
	decl(t, graphd, "20-status.toml", "status", "oneshot", "/usr/bin/graphctl",
		[]string{"status"}, []string{"test.echo"}, []string{"test.status"})
	decl(t, graphd, "30-poweroff.toml", "poweroff", "oneshot", "/usr/bin/graphctl",
		[]string{"poweroff"}, []string{"test.status"}, nil)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "--pid", "--fork", "--mount", "--propagation", "private", "--",
		"sh", "-c", `set -e
mount -t tmpfs -o mode=0755 tmpfs "$1"
cp -a "$2/." "$1/"
mkdir "$1/out"
mount --bind "$3" "$1/out"
exec chroot "$1" /sbin/graph-resolver --log-dir /out/log`, "sh", root, stage, out)
	output, err := cmd.CombinedOutput()
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !(ws.Signaled() && ws.Signal() == syscall.SIGINT) && ws.ExitStatus() != 128+int(syscall.SIGINT) {
		t.Errorf("namespace init ended with %v (%v); want SIGINT, the kernel's sign of reboot(POWER_OFF)\n%s", ws, err, output)
	}

	logs := map[string]string{}
	for _, name := range []string{"echo", "status", "poweroff"} {
		data, err := os.ReadFile(filepath.Join(out, "log", name+".log"))
		if err != nil {
			t.Fatalf("component log: %v", err)
		}
		logs[name] = string(data)
	}
	for name, want := range map[string]string{
		"status":   `(?m)^echo +ACTIVE +\d+ `,
		"poweroff": `(?m)^Powering off$`,
		// It was asked to stop and had time to finish cleanly.
		"echo": `(?m)test-echo-server v1 stopped$`,
	} {
		if !regexp.MustCompile(want).MatchString(logs[name]) {
			t.Errorf("%s.log =\n%s\nwant a match for %s\nall: %q", name, logs[name], want, logs)
		}
	}
	if mounts, _ := os.ReadFile("/proc/self/mounts"); strings.Contains(string(mounts), root) {
		t.Errorf("mounts under %s leaked into the host namespace", root)
	}
}

// Package components holds the component declarations installed into the
// image's /etc/graph.d; these tests prove graph-resolver accepts them, that
// they form the graph the suites expect, and that their shell scripts run.
package components

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"yakimg/yakiros/capability"
	"yakimg/yakiros/config"
)

// decl is the part of a declaration this test pins down.
type decl struct {
	Binary   string
	Args     []string
	Type     config.Type
	Requires []string
	Provides []string
}

// sh marks a /bin/sh script whose text is checked separately.
const sh = "<script>"

var want = map[string]decl{
	"network-setup":    {"/bin/sh", []string{"-c", sh}, config.Oneshot, []string{"filesystem.sys"}, []string{"network.configured"}},
	"storage-setup":    {"/bin/sh", []string{"-c", sh}, config.Oneshot, []string{"filesystem.proc"}, []string{"storage"}},
	"files-setup":      {"/bin/sh", []string{"-c", sh}, config.Oneshot, []string{"filesystem.run"}, []string{"files"}},
	"test-echo-server": {"/usr/local/bin/test-echo-server", []string{"--listen", "127.0.0.1:7070"}, config.Service, []string{"network.configured"}, []string{"test.echo"}},
	"test-file-server": {"/usr/local/bin/test-file-server", []string{"--listen", "127.0.0.1:7090", "--dir", "/run/test-file-server"}, config.Service, []string{"network.configured", "filesystem.run"}, []string{"test.file-server"}},
	"test-web-server": {"/usr/local/bin/test-web-server", []string{"--listen", "127.0.0.1:8080", "--files", "/run/test-files"}, config.Service,
		[]string{"network.configured", "files"}, []string{"test.web"}},
	"test-database": {"/usr/local/bin/test-database", []string{"--listen", "127.0.0.1:7071", "--data", "/checkpoint/test-database", "--ready-file", "/run/test-database.ready"}, config.Service,
		[]string{"storage"}, []string{"test.database"}},
	"test-monitor": {"/usr/local/bin/test-monitor", []string{"--echo", "127.0.0.1:7070", "--web", "127.0.0.1:8080", "--database", "127.0.0.1:7071"}, config.Service,
		[]string{"test.echo", "test.web", "test.database"}, []string{"test.monitor"}},
	"test-cycle-a":      {"/bin/sh", []string{"-c", sh}, config.Service, []string{"test.cycle-b"}, []string{"test.cycle-a"}},
	"test-cycle-b":      {"/bin/sh", []string{"-c", sh}, config.Service, []string{"test.cycle-a"}, []string{"test.cycle-b"}},
	"test-orphan":       {"/bin/sh", []string{"-c", sh}, config.Service, []string{"test.never-provided"}, []string{"test.orphan"}},
	"yakimg-suites":     {"/usr/bin/yakimg-runner", []string{"suites"}, config.Oneshot, []string{"filesystem.run"}, nil},
	"test-health-check": {"/bin/busybox", []string{"sleep", "86400"}, config.Service, []string{"filesystem.run"}, []string{"test.health.check"}},
	"test-health-service": {"/usr/local/bin/test-health-service", []string{"--listen", "127.0.0.1:7072", "--control-file", "/run/test-health-service.control"},
		config.Service, []string{"network.configured"}, []string{"test.health"}},
	"test-health-file": {"/usr/local/bin/test-health-service", []string{"--listen", "127.0.0.1:7073", "--health-file", "/run/test-health-file.health",
		"--control-file", "/run/test-health-file.control"}, config.Service, []string{"network.configured"}, []string{"test.health.file"}},
	"test-isolated-service": {"/usr/local/bin/test-isolated-service", []string{"--listen", "/run/test-isolated-service.sock"},
		config.Service, []string{"filesystem.run"}, []string{"test.isolated"}},
	"test-isolated-user": {"/usr/local/bin/test-isolated-service", []string{"--listen", "127.0.0.1:7074"},
		config.Service, []string{"network.configured"}, []string{"test.isolated.user"}},
	"test-checkpoint-service": {"/usr/local/bin/test-checkpoint-service", []string{"--listen", "127.0.0.1:7075"},
		config.Service, []string{"network.configured"}, []string{"test.checkpoint"}},
	"test-criu-fallback": {"/usr/local/bin/test-echo-server", []string{"--listen", "127.0.0.1:7076"},
		config.Service, []string{"network.configured"}, []string{"test.criu-fallback"}},
	"test-criu-restart": {"/bin/busybox", []string{"sleep", "86400"}, config.Service, []string{"filesystem.run"}, []string{"test.criu-restart"}},
}

func load(t *testing.T) map[string]config.Component {
	t.Helper()
	comps, errs := config.Load(".")
	for _, err := range errs {
		t.Errorf("config.Load(components): %v", err)
	}
	byName := map[string]config.Component{}
	for _, c := range comps {
		byName[c.Name] = c
	}
	return byName
}

func TestDeclarationsLoad(t *testing.T) {
	comps := load(t)
	for name, c := range comps {
		w, ok := want[name]
		if !ok {
			t.Errorf("unexpected component %s (%s)", name, c.File)
			continue
		}
		got := decl{c.Binary, slices.Clone(c.Args), c.Type, c.Requires, c.Provides}
		if len(got.Args) == 2 && got.Binary == "/bin/sh" {
			got.Args[1] = sh
		}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("%s = %+v; want %+v", name, got, w)
		}
	}
	for name := range want {
		if _, ok := comps[name]; !ok {
			t.Errorf("component %s is not declared", name)
		}
	}
}

// The readiness methods the basic suite's readiness-methods case expects:
// each of the three the image can exercise, on one service each.
var wantReadiness = map[string]config.Readiness{
	"test-echo-server":   {Method: config.ReadyNotify, Timeout: 20 * time.Second, Interval: 5 * time.Second},
	"test-file-server":   {Method: config.ReadyNotify, Timeout: 20 * time.Second, Interval: 5 * time.Second},
	"test-criu-fallback": {Method: config.ReadyNotify, Timeout: 20 * time.Second, Interval: 5 * time.Second},
	"test-web-server": {Method: config.ReadyCommand, Command: webReadiness,
		Timeout: 20 * time.Second, Interval: time.Second},
	"test-database": {Method: config.ReadyFile, File: "/run/test-database.ready",
		Timeout: 30 * time.Second, Interval: 5 * time.Second},
	"test-health-service": {Method: config.ReadyNotify, Timeout: 20 * time.Second, Interval: 5 * time.Second},
	"test-health-file": {Method: config.ReadyFile, File: "/run/test-health-file.health",
		Timeout: 30 * time.Second, Interval: 5 * time.Second},
}

const webReadiness = "/bin/busybox wget -q -O /dev/null http://127.0.0.1:8080/health"

func TestReadiness(t *testing.T) {
	for name, c := range load(t) {
		want, ok := wantReadiness[name]
		if !ok {
			want = config.Readiness{Method: config.ReadyNone, Timeout: 30 * time.Second, Interval: 5 * time.Second}
		}
		if !reflect.DeepEqual(c.Readiness, want) {
			t.Errorf("%s: readiness %+v; want %+v", name, c.Readiness, want)
		}
	}
	// test-database creates the file its declaration waits for.
	db := load(t)["test-database"]
	if i := slices.Index(db.Args, "--ready-file"); i < 0 || i+1 == len(db.Args) || db.Args[i+1] != db.Readiness.File {
		t.Errorf("test-database args %q do not pass --ready-file %s", db.Args, db.Readiness.File)
	}
}

// TestWebReadinessOnHost runs test-web-server's readiness command as
// graph-resolver does (/bin/sh -c) against the real test-web-server on
// 127.0.0.1:8080: it fails while nothing listens and while /health is not
// ok (files-setup's directory missing), and succeeds once it is.
func TestWebReadinessOnHost(t *testing.T) {
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skipf("the command calls /bin/busybox, which this host lacks (apt-get install busybox-static): %v", err)
	}
	c := load(t)["test-web-server"]
	check := func() error { return exec.Command("/bin/sh", "-c", c.Readiness.Command).Run() }
	if l, err := net.Listen("tcp", "127.0.0.1:8080"); err != nil {
		t.Skipf("needs 127.0.0.1:8080, the address the command probes: %v", err)
	} else {
		l.Close()
	}
	if err := check(); err == nil {
		t.Fatalf("%q succeeded with nothing on 127.0.0.1:8080", c.Readiness.Command)
	}

	bin := filepath.Join(t.TempDir(), "test-web-server")
	if out, err := exec.Command("go", "build", "-o", bin, "yakimg/testbins/test-web-server").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	files := filepath.Join(t.TempDir(), "files")
	srv := exec.Command(bin, c.Args...)
	srv.Args[slices.Index(srv.Args, "/run/test-files")] = files
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		srv.Process.Kill()
		srv.Wait()
	}()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		conn, err := net.Dial("tcp", "127.0.0.1:8080")
		if err == nil {
			conn.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("test-web-server never listened: %v", err)
		}
	}
	if err := check(); err == nil {
		t.Errorf("%q succeeded while /health is not ok (no %s)", c.Readiness.Command, files)
	}
	if err := os.Mkdir(files, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := check(); err != nil {
		t.Errorf("%q against a healthy test-web-server: %v", c.Readiness.Command, err)
	}
}

// TestGraphShape checks what the suites rely on: every requirement is
// provided by the kernel or a component, except the one test-orphan waits
// for, and the only cycle is test-cycle-a ⇄ test-cycle-b.
func TestGraphShape(t *testing.T) {
	comps := load(t)
	providers := map[string][]string{}
	for _, c := range capability.KernelCapabilities() {
		providers[c] = []string{capability.Kernel}
	}
	for _, c := range comps {
		for _, p := range c.Provides {
			providers[p] = append(providers[p], c.Name)
		}
	}
	var unprovided []string
	for _, c := range comps {
		for _, r := range c.Requires {
			if len(providers[r]) == 0 {
				unprovided = append(unprovided, c.Name+" → "+r)
			}
		}
	}
	slices.Sort(unprovided)
	if !slices.Equal(unprovided, []string{"test-orphan → test.never-provided"}) {
		t.Errorf("unprovided requirements = %v; want only test-orphan's", unprovided)
	}

	// A component is on a cycle when it can reach itself through requires
	// edges (component → provider of a required capability).
	reaches := func(from, to string) bool {
		seen := map[string]bool{}
		stack := []string{from}
		for len(stack) > 0 {
			n := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			for _, r := range comps[n].Requires {
				for _, p := range providers[r] {
					if p == to {
						return true
					}
					if !seen[p] {
						seen[p] = true
						stack = append(stack, p)
					}
				}
			}
		}
		return false
	}
	var onCycle []string
	for name := range comps {
		if reaches(name, name) {
			onCycle = append(onCycle, name)
		}
	}
	slices.Sort(onCycle)
	if !slices.Equal(onCycle, []string{"test-cycle-a", "test-cycle-b"}) {
		t.Errorf("components on a cycle = %v; want test-cycle-a and test-cycle-b", onCycle)
	}
}

// TestScriptsParse runs every /bin/sh script through busybox sh -n, the
// shell the image has.
func TestScriptsParse(t *testing.T) {
	busybox := findBusybox(t)
	for name, c := range load(t) {
		if c.Binary != "/bin/sh" {
			continue
		}
		if out, err := exec.Command(busybox, "sh", "-n", "-c", c.Args[1]).CombinedOutput(); err != nil {
			t.Errorf("%s: busybox sh -n: %v\n%s", name, err, out)
		}
	}
}

// TestNetworkSetupOnHost runs network-setup's script for real: the host's
// loopback is up with 127.0.0.1/8, as the guest's must be.
func TestNetworkSetupOnHost(t *testing.T) {
	findBusybox(t)
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skipf("the script calls /bin/busybox, which this host lacks: %v", err)
	}
	c := load(t)["network-setup"]
	out, err := exec.Command("/bin/busybox", "sh", "-c", c.Args[1]).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "network-setup: lo is up with 127.0.0.1/8" {
		t.Errorf("network-setup on the host: %v, output %q; want success", err, out)
	}
}

func findBusybox(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("busybox")
	if err != nil {
		t.Skipf("needs busybox (apt-get install busybox-static): %v", err)
	}
	return p
}

// The health checks the health-checks suite relies on: one service per
// method, each checked every second, with the thresholds the suite counts.
var wantHealth = map[string]config.Health{
	"test-health-check": {Method: config.HealthCommand, Command: "/usr/libexec/graph/health-check-test.sh /run/test-health-check",
		Interval: time.Second, Timeout: time.Second, FailThreshold: 3, RestartThreshold: 5},
	"test-health-service": {Method: config.HealthNotify, Interval: time.Second, Timeout: time.Second, FailThreshold: 2, RestartThreshold: 4},
	"test-health-file": {Method: config.HealthFile, File: "/run/test-health-file.health",
		Interval: time.Second, Timeout: time.Second, FailThreshold: 2, RestartThreshold: 3},
	"test-checkpoint-service": {Method: config.HealthCommand, Command: "/usr/local/bin/test-checkpoint-service check 127.0.0.1:7075",
		Interval: 5 * time.Second, Timeout: 3 * time.Second, FailThreshold: 3, RestartThreshold: 5},
}

func TestHealth(t *testing.T) {
	for name, c := range load(t) {
		want, ok := wantHealth[name]
		if !ok {
			want = config.Health{Method: config.HealthNone, Interval: time.Minute, Timeout: 10 * time.Second, FailThreshold: 3, RestartThreshold: 5}
		}
		if !reflect.DeepEqual(c.Health, want) {
			t.Errorf("%s: health %+v; want %+v", name, c.Health, want)
		}
	}
	// test-health-file writes the file its declaration reads.
	f := load(t)["test-health-file"]
	if i := slices.Index(f.Args, "--health-file"); i < 0 || i+1 == len(f.Args) || f.Args[i+1] != f.Health.File {
		t.Errorf("test-health-file args %q do not pass --health-file %s", f.Args, f.Health.File)
	}
}

// runCheck runs health-check-test.sh with busybox sh on dir, as the check
// command does, and returns its exit status and output.
func runCheck(t *testing.T, busybox, dir string) (int, string) {
	t.Helper()
	out, err := exec.Command(busybox, "sh", "health-check-test.sh", dir).CombinedOutput()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return exit.ExitCode(), string(out)
	case err != nil:
		t.Fatal(err)
	}
	return 0, string(out)
}

// TestHealthCheckScript runs health-check-test.sh for real: it creates its
// directory, passes, fails and rejects what its mode file says, logs every
// run, and hangs (shell and background sleep in one process group) until
// killed.
func TestHealthCheckScript(t *testing.T) {
	busybox := findBusybox(t)
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skipf("the script calls /bin/busybox, which this host lacks: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "check")
	mode := func(m string) {
		if err := os.WriteFile(filepath.Join(dir, "mode"), []byte(m+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		mode string // "" leaves the file as it is (missing at first)
		code int
		out  string
	}{
		{"", 0, ""},
		{"ok", 0, ""},
		{"fail", 1, "health-check-test: " + dir + "/mode says fail\n"},
		{"bogus", 2, "health-check-test: unknown mode 'bogus' in " + dir + "/mode (ok, fail, hang)\n"},
	} {
		if tc.mode != "" {
			mode(tc.mode)
		}
		if code, out := runCheck(t, busybox, dir); code != tc.code || out != tc.out {
			t.Errorf("mode %q: exit %d, output %q; want %d, %q", tc.mode, code, out, tc.code, tc.out)
		}
	}
	runs, err := os.ReadFile(filepath.Join(dir, "runs"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^ok \d+ \d+\.\d+\nok \d+ \d+\.\d+\nfail \d+ \d+\.\d+\nbogus \d+ \d+\.\d+\n$`).Match(runs) {
		t.Errorf("runs = %q; want one line per run: mode, pid, uptime", runs)
	}

	mode("hang")
	cmd := exec.Command(busybox, "sh", "health-check-test.sh", dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var hung []string
	for deadline := time.Now().Add(10 * time.Second); len(hung) != 3; time.Sleep(10 * time.Millisecond) {
		data, _ := os.ReadFile(filepath.Join(dir, "hung"))
		hung = strings.Fields(string(data))
		if time.Now().After(deadline) {
			t.Fatalf("no hung file; got %q", data)
		}
	}
	if hung[0] != strconv.Itoa(cmd.Process.Pid) {
		t.Errorf("hung = %q; want the shell's pid %d first", hung, cmd.Process.Pid)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		t.Fatalf("the hanging check returned: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	sleep, _ := strconv.Atoi(hung[1])
	if pgid, err := syscall.Getpgid(sleep); err != nil || pgid != cmd.Process.Pid {
		t.Errorf("the background sleep %d is in group %d (%v); want the check's group %d", sleep, pgid, err, cmd.Process.Pid)
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
}

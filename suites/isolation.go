package suites

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"yakimg/yakiros/control"
)

// isolation checks cgroup v2 limits, OOM handling and namespaces
// (docs/ISOLATION.md) by pushing the isolated test service against each
// limit, not by reading files alone.
var isolation = Suite{
	Name: "isolation",
	Cases: []Case{
		{Name: "groups-and-limits-in-place", Run: groupsAndLimits},
		{Name: "namespaces-seen-inside", Run: namespacesInside},
		{Name: "user-namespace-maps", Run: userNamespace},
		{Name: "pids-max-refuses-fork", Run: pidsMaxRefusesFork},
		{Name: "cpu-max-throttles", Timeout: 60 * time.Second, Run: cpuMaxThrottles},
		{Name: "oom-kill-fails-and-restarts", Timeout: 60 * time.Second, Run: oomKill},
		{Name: "bad-declarations-rejected", Run: badDeclarations},
		{Name: "stop-removes-group", Run: stopRemovesGroup},
		{Name: "start-stop-cycles-leak-nothing", Timeout: 300 * time.Second, Run: startStopCycles},
	},
}

const (
	isoComp      = "test-isolated-service"
	isoSocket    = "/run/test-isolated-service.sock"
	isoGroup     = "/sys/fs/cgroup/graph/sandbox/isolated"
	isoUserComp  = "test-isolated-user"
	isoUserAddr  = "127.0.0.1:7074"
	isoNeighbour = "test-database"

	askLimit = 20 * time.Second // for one answer of test-isolated-service
)

// isoStatuses is the status over the control socket, isolation included.
func isoStatuses(t *T) []control.ComponentStatus {
	resp, err := control.Do(t.ctx, control.SocketPath(), control.Request{Command: "status"})
	if err == nil && !resp.OK {
		err = errors.New(resp.Error)
	}
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	var d control.StatusData
	if err := json.Unmarshal(resp.Data, &d); err != nil {
		t.Fatalf("decode status: %v", err)
	}
	return d.Components
}

func isoStatus(t *T, name string) control.ComponentStatus {
	for _, c := range isoStatuses(t) {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no component %s in status", name)
	return control.ComponentStatus{}
}

// waitActive waits until name is ACTIVE with a process, and (if old is not
// 0) a process other than old.
func waitActive(t *T, name string, old int, limit time.Duration) control.ComponentStatus {
	start := time.Now()
	for {
		c := isoStatus(t, name)
		if c.State == "ACTIVE" && c.Pid != 0 && c.Pid != old {
			return c
		}
		if time.Since(start) > limit {
			t.Fatalf("%s not ACTIVE (with a new process) after %v: %s %q pid %d", name, limit, c.State, c.Reason, c.Pid)
		}
		sleepCtx(t, 100*time.Millisecond)
	}
}

func sleepCtx(t *T, d time.Duration) {
	select {
	case <-t.ctx.Done():
		t.Fatalf("deadline: %v", t.ctx.Err())
	case <-time.After(d):
	}
}

// ask sends one command to a test-isolated-service and returns its answer
// line; an error means the connection broke (the service died).
func ask(t *T, network, addr, cmd string) (string, error) {
	var d net.Dialer
	var c net.Conn
	var err error
	for range 50 { // the service may still be coming up
		if c, err = d.DialContext(t.ctx, network, addr); err == nil {
			break
		}
		sleepCtx(t, 100*time.Millisecond)
	}
	if err != nil {
		return "", err
	}
	defer c.Close()
	// No command takes long, but the service may be dying slowly.
	dl := time.Now().Add(askLimit)
	if ctxDl, ok := t.ctx.Deadline(); ok && ctxDl.Before(dl) {
		dl = ctxDl
	}
	c.SetDeadline(dl)
	if _, err := fmt.Fprintln(c, cmd); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSuffix(line, "\n"), err
}

// view is test-isolated-service's answer to info.
type view struct {
	Pid        int               `json:"pid"`
	Hostname   string            `json:"hostname"`
	Tmp        []string          `json:"tmp"`
	Interfaces map[string]bool   `json:"interfaces"`
	Cgroup     string            `json:"cgroup"`
	Limits     map[string]string `json:"limits"`
	UID        int               `json:"uid"`
}

func info(t *T, network, addr string) view {
	line, err := ask(t, network, addr, "info")
	if err != nil {
		t.Fatalf("info from %s: %v", addr, err)
	}
	var v view
	if err := json.Unmarshal([]byte(line), &v); err != nil {
		t.Fatalf("decode info %q: %v", line, err)
	}
	return v
}

func readTrim(t *T, path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return strings.TrimSpace(string(data))
}

// cgroupKey reads one "key value" line of a cgroup file.
func cgroupKey(t *T, path, key string) int64 {
	for _, line := range strings.Split(readTrim(t, path), "\n") {
		if v, ok := strings.CutPrefix(line, key+" "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("%s: %s: %v", path, key, err)
			}
			return n
		}
	}
	t.Fatalf("%s has no %s", path, key)
	return 0
}

// groupsAndLimits: the service runs in its group with the declared limits
// written, the controllers enabled on every level above it, and status
// and inspect show the group, its limits, its usage and the namespaces.
func groupsAndLimits(t *T) {
	c := waitActive(t, isoComp, 0, 20*time.Second)
	cg := readTrim(t, fmt.Sprintf("/proc/%d/cgroup", c.Pid))
	if cg != "0::/graph/sandbox/isolated" {
		t.Fatalf("the service's /proc/%d/cgroup is %q, want 0::/graph/sandbox/isolated", c.Pid, cg)
	}
	for file, want := range map[string]string{"memory.max": "67108864", "memory.oom.group": "1",
		"pids.max": "32", "cpu.max": "50000 100000", "cpu.weight": "50", "io.weight": "default 50"} {
		if got := readTrim(t, filepath.Join(isoGroup, file)); got != want {
			t.Fatalf("%s/%s = %q, want %q", isoGroup, file, got, want)
		}
	}
	for _, dir := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/graph", "/sys/fs/cgroup/graph/sandbox"} {
		on := strings.Fields(readTrim(t, filepath.Join(dir, "cgroup.subtree_control")))
		for _, want := range []string{"cpu", "io", "memory", "pids"} {
			if !slices.Contains(on, want) {
				t.Fatalf("%s/cgroup.subtree_control = %q: no %s", dir, on, want)
			}
		}
	}
	iso := c.Isolation
	switch {
	case iso == nil:
		t.Fatalf("status shows no isolation for %s", isoComp)
	case iso.Cgroup != isoGroup || iso.Limits["memory.max"] != "67108864" || iso.Limits["pids.max"] != "32":
		t.Fatalf("status isolation = %+v", iso)
	case iso.Usage == nil || iso.Usage.MemoryCurrent <= 0 || iso.Usage.PidsCurrent <= 0 || iso.Usage.NrThrottled < 0:
		t.Fatalf("status usage = %+v", iso.Usage)
	case !slices.Equal(iso.Namespaces, []string{"ipc", "mount", "net", "pid", "uts"}):
		t.Fatalf("status namespaces = %q", iso.Namespaces)
	}
	out, _, err := t.graphctl("inspect", isoComp)
	if err != nil {
		t.Fatalf("%v", err)
	}
	for _, want := range []string{"Cgroup:    " + isoGroup, "Limit:     memory.max = 67108864", "Usage:     memory.current ",
		"Namespaces: ipc, mount, net, pid, uts", "Hostname:  isolated-box"} {
		if !strings.Contains(out, want) {
			t.Fatalf("graphctl inspect %s lacks %q:\n%s", isoComp, want, out)
		}
	}
	if plain := isoStatus(t, "test-echo-server"); plain.Isolation != nil {
		t.Fatalf("a component without [resources] shows isolation %+v", plain.Isolation)
	}
	t.Logf("pid %d in %s, memory.current %d, pids.current %d", c.Pid, iso.Cgroup, iso.Usage.MemoryCurrent, iso.Usage.PidsCurrent)
}

// namespacesInside: the service is PID 1 of its pid namespace, has its
// host name, a /tmp of its own both ways, and only lo, which is up.
func namespacesInside(t *T) {
	waitActive(t, isoComp, 0, 20*time.Second)
	outside := fmt.Sprintf("outside-%d", os.Getpid())
	if err := os.WriteFile(filepath.Join("/tmp", outside), nil, 0o644); err != nil {
		t.Fatalf("%v", err)
	}
	defer os.Remove(filepath.Join("/tmp", outside))
	if got, err := ask(t, "unix", isoSocket, "touch inside"); got != "ok" {
		t.Fatalf("touch inside: %q %v", got, err)
	}
	v := info(t, "unix", isoSocket)
	host, _ := os.Hostname()
	switch {
	case v.Pid != 1:
		t.Fatalf("the service sees itself as pid %d, want 1", v.Pid)
	case v.Hostname != "isolated-box":
		t.Fatalf("the service's host name is %q, want isolated-box", v.Hostname)
	case host == "isolated-box":
		t.Fatalf("the host name leaked out: the suite sees %q", host)
	case !slices.Equal(v.Tmp, []string{"inside"}):
		t.Fatalf("the service's /tmp holds %q, want only its own file", v.Tmp)
	case len(v.Interfaces) != 1 || !v.Interfaces["lo"]:
		t.Fatalf("the service's interfaces are %v, want only lo, up", v.Interfaces)
	}
	if _, err := os.Stat("/tmp/inside"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the service's /tmp/inside is visible outside: %v", err)
	}
	t.Logf("inside: pid %d, host %s, /tmp %q, interfaces %v, cgroup %s, limits %v", v.Pid, v.Hostname, v.Tmp, v.Interfaces, v.Cgroup, v.Limits)
}

// userNamespace: root in the user namespace is uid 100000 outside, as
// uid_map says.
func userNamespace(t *T) {
	c := waitActive(t, isoUserComp, 0, 20*time.Second)
	if _, err := ask(t, "tcp", isoUserAddr, "info"); err != nil {
		out, _, _ := t.graphctl("log", isoUserComp, "10")
		t.Fatalf("%s (pid %d) does not answer: %v; its log:\n%s", isoUserComp, c.Pid, err, out)
	}
	if got := readTrim(t, "/sys/fs/cgroup/graph/"+isoUserComp+"/memory.high"); got != "50331648" {
		t.Fatalf("memory.high = %q, want 50331648", got)
	}
	v := info(t, "tcp", isoUserAddr)
	if v.UID != 0 || v.Hostname != "userns-box" {
		t.Fatalf("inside: uid %d, host %q; want 0 and userns-box", v.UID, v.Hostname)
	}
	status := readTrim(t, fmt.Sprintf("/proc/%d/status", c.Pid))
	var uid string
	for _, line := range strings.Split(status, "\n") {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			uid = strings.Fields(rest)[0]
		}
	}
	if uid != "100000" {
		t.Fatalf("outside, pid %d runs as uid %q, want 100000", c.Pid, uid)
	}
	if m := readTrim(t, fmt.Sprintf("/proc/%d/uid_map", c.Pid)); strings.Join(strings.Fields(m), " ") != "0 100000 65536" {
		t.Fatalf("uid_map = %q", m)
	}
}

// pidsMaxRefusesFork: forking past pids.max fails inside the service,
// which lives on.
func pidsMaxRefusesFork(t *T) {
	c := waitActive(t, isoComp, 0, 20*time.Second)
	before := cgroupKey(t, filepath.Join(isoGroup, "pids.events"), "max")
	got, err := ask(t, "unix", isoSocket, "fork 100")
	if err != nil {
		t.Fatalf("fork 100: %v", err)
	}
	var k, n int
	var rest string
	if _, err := fmt.Sscanf(got, "ok forked %d of %d", &k, &n); err != nil || k >= 32 || !strings.Contains(got, ": ") {
		t.Fatalf("fork 100 under pids.max 32 answered %q, want fewer than 32 forks and the error", got)
	}
	_, rest, _ = strings.Cut(got, ": ")
	after := cgroupKey(t, filepath.Join(isoGroup, "pids.events"), "max")
	if after <= before {
		t.Fatalf("pids.events max stayed at %d", after)
	}
	if now := isoStatus(t, isoComp); now.Pid != c.Pid || now.State != "ACTIVE" {
		t.Fatalf("the service did not live on: %s pid %d (was %d)", now.State, now.Pid, c.Pid)
	}
	t.Logf("forked %d of 100, then: %s; pids.events max %d → %d", k, rest, before, after)
}

// cpuMaxThrottles: a CPU hog under cpu.max is throttled (nr_throttled
// rises), and graphctl status answers meanwhile.
func cpuMaxThrottles(t *T) {
	waitActive(t, isoComp, 0, 20*time.Second)
	stat := filepath.Join(isoGroup, "cpu.stat")
	before := cgroupKey(t, stat, "nr_throttled")
	done := make(chan string, 1)
	go func() {
		got, err := ask(t, "unix", isoSocket, "spin 4")
		done <- fmt.Sprint(got, err)
	}()
	sleepCtx(t, time.Second)
	var slowest time.Duration
	for range 5 {
		t0 := time.Now()
		if _, _, err := t.graphctl("status"); err != nil {
			t.Fatalf("graphctl status during the hog: %v", err)
		}
		slowest = max(slowest, time.Since(t0))
	}
	if got := <-done; got != "ok spun 4 s<nil>" {
		t.Fatalf("spin 4: %s", got)
	}
	after := cgroupKey(t, stat, "nr_throttled")
	if after <= before {
		t.Fatalf("cpu.stat nr_throttled stayed at %d under cpu.max 50000 100000", after)
	}
	t.Metric("isolation_status_ms_under_cpu_hog", float64(slowest.Microseconds())/1000)
	t.Logf("nr_throttled %d → %d, throttled_usec %d; slowest graphctl status %v", before, after,
		cgroupKey(t, stat, "throttled_usec"), slowest.Round(time.Millisecond))
}

// oomKill: allocating past memory.max gets the service OOM-killed; it
// is FAILED with reason OOM, restarted, and its neighbours keep running.
func oomKill(t *T) {
	c := waitActive(t, isoComp, 0, 20*time.Second)
	neighbours := map[string]int{}
	for _, n := range []string{isoNeighbour, isoUserComp, "test-echo-server"} {
		neighbours[n] = waitActive(t, n, 0, 20*time.Second).Pid
	}
	oomBefore := c.Isolation.OOMKills
	got, err := ask(t, "unix", isoSocket, "alloc 256")
	if err == nil {
		t.Fatalf("alloc 256 under memory.max 64M answered %q", got)
	}
	// FAILED lasts the back-off (1 s): sample often.
	start := time.Now()
	var reason string
	for reason == "" {
		s := isoStatus(t, isoComp)
		if s.State == "FAILED" {
			reason = s.Reason
		}
		if s.State == "ACTIVE" && s.Pid != c.Pid && reason == "" {
			t.Fatalf("restarted (pid %d) without FAILED being seen; restarts %d", s.Pid, s.Restarts)
		}
		if time.Since(start) > 20*time.Second {
			t.Fatalf("not FAILED 20s after the allocation: %s %q", s.State, s.Reason)
		}
		sleepCtx(t, 30*time.Millisecond)
	}
	if !strings.HasPrefix(reason, "OOM: ") {
		t.Fatalf("FAILED with reason %q, want OOM", reason)
	}
	n := waitActive(t, isoComp, c.Pid, 30*time.Second)
	if n.Restarts <= c.Restarts || n.Isolation.OOMKills <= oomBefore {
		t.Fatalf("after the OOM kill: restarts %d (was %d), oom_kills %d (was %d)", n.Restarts, c.Restarts, n.Isolation.OOMKills, oomBefore)
	}
	for name, pid := range neighbours {
		if s := isoStatus(t, name); s.State != "ACTIVE" || s.Pid != pid {
			t.Fatalf("neighbour %s disturbed: %s pid %d (was %d)", name, s.State, s.Pid, pid)
		}
	}
	t.Logf("reason %q; restarted as pid %d (restarts %d, oom_kills %d)", reason, n.Pid, n.Restarts, n.Isolation.OOMKills)
}

// reload runs graphctl --json reload.
func reload(t *T) control.ReloadData {
	out, _, err := t.graphctl("--json", "reload")
	if err != nil {
		t.Fatalf("%v", err)
	}
	var d control.ReloadData
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("decode reload: %v", err)
	}
	return d
}

// badDeclarations: bad limits, namespaces and cgroup paths are rejected
// at load with file:line: message, and the rest of the graph stays up.
func badDeclarations(t *T) {
	bad := map[string]struct{ body, want string }{
		"bad-unit":      {"[resources]\nmemory_max = \"64MB\"\n", `:7: resources.memory_max: `},
		"bad-pids":      {"[resources]\npids_max = -3\n", `:7: resources.pids_max: must be at least 0, not -3`},
		"bad-namespace": {"[isolation]\nnamespaces = [\"mount\", \"cgroups\"]\n", `:7: isolation.namespaces: unknown namespace "cgroups"`},
		"bad-cgroup":    {"[resources]\ncgroup = \"../escape\"\n", `:7: resources.cgroup: must be a clean relative path`},
	}
	var files []string
	defer func() {
		for _, f := range files {
			os.Remove(f)
		}
		reload(t)
	}()
	names := slices.Sorted(maps.Keys(bad))
	for _, n := range names {
		f := filepath.Join(graphDir, "iso-"+n+".toml")
		putFile(t, f, fmt.Sprintf("[component]\nname = \"iso-%s\"\nbinary = \"/bin/busybox\"\nargs = [\"sleep\", \"60\"]\n\n%s", n, bad[n].body))
		files = append(files, f)
	}
	d := reload(t)
	for _, n := range names {
		f := filepath.Join(graphDir, "iso-"+n+".toml")
		found := ""
		for _, r := range d.Rejected {
			if strings.HasPrefix(r, f+":") {
				found = r
			}
		}
		if !strings.Contains(found, f+bad[n].want) {
			t.Fatalf("%s: rejected as %q, want %q; all rejected: %q", n, found, f+bad[n].want, d.Rejected)
		}
		t.Logf("%s", found)
	}
	for _, name := range []string{isoComp, isoNeighbour, "test-echo-server"} {
		if s := isoStatus(t, name); s.State != "ACTIVE" {
			t.Fatalf("%s is %s after loading bad declarations", name, s.State)
		}
	}
}

// cycleDecl is a short-lived isolated component for the stop cases.
const cycleDecl = `[component]
name = "iso-cycle"
binary = "/usr/local/bin/test-isolated-service"
args = ["--listen", "/run/iso-cycle.sock"]

[resources]
cgroup = "cycle/iso"
pids_max = 16
memory_max = "32M"

[isolation]
namespaces = ["pid", "mount", "net", "uts", "ipc"]
hostname = "cycle"
private_tmp = true
`

const cycleGroup = "/sys/fs/cgroup/graph/cycle/iso"

// cycle starts iso-cycle through a reload, waits for it to be ACTIVE in
// its group, then removes it and waits for the group to be gone.
func cycle(t *T, file string) int {
	putFile(t, file, cycleDecl)
	reload(t)
	c := waitActive(t, "iso-cycle", 0, 20*time.Second)
	if _, err := os.Stat(cycleGroup); err != nil {
		t.Fatalf("iso-cycle ACTIVE (pid %d) without its group: %v", c.Pid, err)
	}
	os.Remove(file)
	reload(t)
	start := time.Now()
	for {
		_, err := os.Stat(cycleGroup)
		if errors.Is(err, os.ErrNotExist) {
			return c.Pid
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("%s still there 10s after iso-cycle (pid %d) was removed: %v", cycleGroup, c.Pid, err)
		}
		sleepCtx(t, 20*time.Millisecond)
	}
}

// stopRemovesGroup: once a stopped component's process is gone, so is
// its group, and its process.
func stopRemovesGroup(t *T) {
	file := filepath.Join(graphDir, "iso-cycle.toml")
	defer os.Remove(file)
	pid := cycle(t, file)
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pid %d still exists after the stop: %v", pid, err)
	}
}

func countDir(t *T, dir string) int {
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return len(es)
}

// cycleProcesses lists the pids running iso-cycle's binary with its
// arguments: none may be left once it is stopped.
func cycleProcesses(t *T) []string {
	es, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("%v", err)
	}
	var pids []string
	for _, e := range es {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if strings.Contains(string(cmd), "/run/iso-cycle.sock") {
			pids = append(pids, e.Name())
		}
	}
	return pids
}

// pid1FDs counts PID 1's descriptors, the lowest of a few readings: a
// control connection or a health check may hold one for a moment.
func pid1FDs(t *T) int {
	low := -1
	for range 3 {
		if n := countDir(t, "/proc/1/fd"); low < 0 || n < low {
			low = n
		}
		sleepCtx(t, 100*time.Millisecond)
	}
	return low
}

// startStopCycles: 100 starts and stops leave no group, no process and no
// descriptor of PID 1 behind.
func startStopCycles(t *T) {
	const cycles = 100
	file := filepath.Join(graphDir, "iso-cycle.toml")
	defer os.Remove(file)
	cycle(t, file) // the first start makes the parents
	fds := pid1FDs(t)
	groups := countDir(t, "/sys/fs/cgroup/graph/cycle")
	start := time.Now()
	for range cycles {
		cycle(t, file)
	}
	elapsed := time.Since(start)
	fds2, left, groups2 := pid1FDs(t), cycleProcesses(t), countDir(t, "/sys/fs/cgroup/graph/cycle")
	if fds2 > fds || len(left) > 0 || groups2 != groups {
		t.Fatalf("after %d cycles: PID 1 fds %d → %d, processes left %q, entries of graph/cycle %d → %d",
			cycles, fds, fds2, left, groups, groups2)
	}
	t.Metric("isolation_start_stop_cycle_ms", float64(elapsed.Milliseconds())/cycles)
	t.Logf("%d cycles in %v; PID 1 fds %d → %d; no process or group left", cycles, elapsed.Round(time.Millisecond), fds, fds2)
}

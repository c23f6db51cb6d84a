package resolver

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"yakimg/yakiros/config"
	"yakimg/yakiros/isolate"
	"yakimg/yakiros/supervise"
)

// TestIsolatedUnitGroup: a component with [resources] is cloned into its
// group, which status shows and which is gone once the process is reaped;
// a component without stays in PID 1's group. It needs root and a cgroup
// v2 mount (/sys/fs/cgroup, or the "unified" one of a hybrid host).
func TestIsolatedUnitGroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: cgroups")
	}
	var mount string
	for _, d := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		if isolate.IsCgroup2(d) {
			mount = d
			break
		}
	}
	if mount == "" {
		t.Skip("needs a cgroup v2 mount: neither /sys/fs/cgroup nor /sys/fs/cgroup/unified is one")
	}
	top := filepath.Join(mount, fmt.Sprintf("resolver-test-%d", os.Getpid()))
	if err := os.Mkdir(top, 0o755); err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, d := range []string{"graph/apps/sleeper", "graph/apps", "graph", ""} {
			os.Remove(filepath.Join(top, d))
		}
	}()
	logs := supervise.NewLogs(t.TempDir(), 1<<20, t.Logf)
	l := newLoop(&logger{w: io.Discard}, false, "", logs, nil, nil, []config.Component{
		{Name: "sleeper", Binary: "/bin/sleep", Args: []string{"60"}, Type: config.Service,
			Resources: config.Resources{Cgroup: "apps/sleeper"}},
		{Name: "plain", Binary: "/bin/sleep", Args: []string{"60"}, Type: config.Service},
	}, nil)
	l.iso.top = top
	defer l.closeIsolation()
	l.resolve()
	iso, plain := l.byName["sleeper"], l.byName["plain"]
	defer supervise.Signal(plain.pid, syscall.SIGKILL)
	if !iso.alive || !plain.alive {
		t.Fatalf("not started: sleeper %v %q, plain %v %q", iso.state, iso.reason, plain.state, plain.reason)
	}
	cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", iso.pid))
	if !strings.Contains(string(cg), "/graph/apps/sleeper\n") {
		t.Errorf("sleeper's cgroup: %q", cg)
	}
	mine, _ := os.ReadFile("/proc/self/cgroup")
	if cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", plain.pid)); string(cg) != string(mine) {
		t.Errorf("plain's cgroups %q differ from the test's %q", cg, mine)
	}
	if s := l.isolationStatus(iso); s == nil || s.Cgroup != filepath.Join(top, "graph/apps/sleeper") || s.Usage == nil {
		t.Errorf("isolation status = %+v", s)
	}
	if s := l.isolationStatus(plain); s != nil {
		t.Errorf("plain has isolation status %+v", s)
	}
	group := filepath.Join(top, "graph/apps/sleeper")
	supervise.Signal(iso.pid, syscall.SIGKILL)
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(iso.pid, &ws, 0, nil); err != nil {
		t.Fatal(err)
	}
	l.exited(supervise.Exit{Pid: iso.pid, Status: ws})
	if _, err := os.Stat(group); !os.IsNotExist(err) {
		t.Errorf("group %s left after the exit: %v", group, err)
	}
	if iso.state != Failed || iso.reason != "killed by signal 9 (killed)" {
		t.Errorf("sleeper %v %q", iso.state, iso.reason)
	}
}

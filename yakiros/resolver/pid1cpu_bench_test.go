package resolver

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"yakimg/yakiros/control"
	"yakimg/yakiros/health"
)

// pid1LoadServices is the health-checks suite's load: 20 services, each
// with a command check every second (suites/health.go, loadDecl).
const pid1LoadServices = 20

// BenchmarkPID1HealthChecks measures, on this machine's own CPU, what the
// health-checks suite measures under emulation: the CPU time of
// graph-resolver running as a real PID 1 (a PID namespace, a chroot on a
// tmpfs) while 20 services are checked every second by the image's
// health-check-test.sh under busybox sh. Each iteration is one second of
// wall time; run it with -benchtime 10x for the suite's 10 s window:
//
//	go test -run '^$' -bench PID1HealthChecks -benchtime 10x ./yakiros/resolver
//
// pid1-cpu-% is PID 1's own CPU time (every thread, from schedstat, in
// nanoseconds) over the window, in percent of one core; runner-cpu-% is the
// check runner's own, checks-cpu-% that of the check processes it reaped.
// The target (DESIGN §7, issue 5) is pid1-cpu-% under 1.
func BenchmarkPID1HealthChecks(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: creates PID and mount namespaces and mounts a tmpfs")
	}
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		b.Skipf("needs a static busybox for the checks' shell (Debian: busybox-static): %v", err)
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		b.Skipf("needs unshare(1): %v", err)
	}
	stage, root := b.TempDir(), b.TempDir()
	copyFile(b, builtResolver(b), filepath.Join(stage, "sbin/graph-resolver"), 0o755)
	copyFile(b, busybox, filepath.Join(stage, "bin/busybox"), 0o755)
	if err := os.Symlink("busybox", filepath.Join(stage, "bin/sh")); err != nil {
		b.Fatal(err)
	}
	copyFile(b, "../../components/health-check-test.sh", filepath.Join(stage, "usr/libexec/graph/health-check-test.sh"), 0o755)
	graphd := filepath.Join(stage, "etc/graph.d")
	if err := os.MkdirAll(graphd, 0o755); err != nil {
		b.Fatal(err)
	}
	for i := 1; i <= pid1LoadServices; i++ {
		decl(b, graphd, fmt.Sprintf("%02d.toml", i), fmt.Sprintf("health-load-%02d", i), "service", "/bin/busybox",
			[]string{"sleep", "86400"}, []string{"filesystem.run"}, nil,
			fmt.Sprintf(`health_check = "/usr/libexec/graph/health-check-test.sh /run/health-load/%02d"`, i),
			"health_interval = 1", "health_timeout = 2")
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "--pid", "--fork", "--mount", "--propagation", "private", "--",
		"sh", "-c", `set -e
mount -t tmpfs -o mode=0755 tmpfs "$1"
cp -a "$2/." "$1/"
exec chroot "$1" /sbin/graph-resolver`, "sh", root, stage)
	// Written by exec's copying goroutine while waitFor may read it.
	var output lockedBuffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	// Killing the namespace's init kills everything in it; nothing is
	// shut down cleanly, so nothing is unmounted or remounted.
	pid1 := 0
	defer func() {
		if pid1 != 0 {
			unix.Kill(pid1, unix.SIGKILL)
		}
		cancel()
		cmd.Wait()
	}()
	waitFor := func(what string, cond func() bool) {
		b.Helper()
		for deadline := time.Now().Add(60 * time.Second); !cond(); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatalf("gave up waiting for %s; graph-resolver said:\n%s", what, output.String())
			}
		}
	}
	waitFor("graph-resolver to start in the namespace", func() bool {
		pid1 = childNamed(cmd.Process.Pid, "graph-resolver")
		return pid1 != 0
	})
	// The namespace's files, through its init's root.
	inside := func(path string) string { return fmt.Sprintf("/proc/%d/root%s", pid1, path) }
	socket := inside(control.DefaultSocket)
	waitFor(fmt.Sprintf("%d load services ACTIVE and healthy", pid1LoadServices), func() bool {
		resp, err := control.Do(ctx, socket, control.Request{Command: "status"})
		if err != nil || !resp.OK {
			return false
		}
		var st control.StatusData
		if json.Unmarshal(resp.Data, &st) != nil {
			return false
		}
		healthy := 0
		for _, c := range st.Components {
			if c.State == "ACTIVE" && c.Health == "ok" {
				healthy++
			}
		}
		return healthy == pid1LoadServices
	})
	runner := childNamed(pid1, health.RunnerName)
	if runner == 0 {
		b.Fatalf("no %s among PID 1's children", health.RunnerName)
	}
	// As the suite does: starting the services is not the checks' cost.
	time.Sleep(2 * time.Second)

	pid1Start, runnerStart, checksStart := threadsCPU(b, pid1), threadsCPU(b, runner), reapedCPU(b, runner)
	start := time.Now()
	for b.Loop() {
		time.Sleep(time.Second)
	}
	elapsed := time.Since(start)
	percent := func(d time.Duration) float64 { return float64(d) / float64(elapsed) * 100 }
	b.ReportMetric(percent(threadsCPU(b, pid1)-pid1Start), "pid1-cpu-%")
	b.ReportMetric(percent(threadsCPU(b, runner)-runnerStart), "runner-cpu-%")
	b.ReportMetric(percent(reapedCPU(b, runner)-checksStart), "checks-cpu-%")
	runs, _ := os.ReadFile(inside("/run/health-load/01/runs"))
	if n := strings.Count(string(runs), "\n"); n < int(elapsed/time.Second) {
		b.Errorf("health-load-01's check ran %d times in all; want at least one a second over %v", n, elapsed.Round(time.Second))
	}
}

// childNamed returns the pid of a child of parent whose argv[0] is name
// (the runner is graph-resolver's binary under another name), or 0.
func childNamed(parent int, name string) int {
	// Each thread lists the children it forked.
	kids, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", parent))
	var pids []string
	for _, k := range kids {
		data, _ := os.ReadFile(k)
		pids = append(pids, strings.Fields(string(data))...)
	}
	for _, field := range pids {
		pid, _ := strconv.Atoi(field)
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if arg0, _, _ := strings.Cut(string(cmdline), "\x00"); filepath.Base(arg0) == name {
			return pid
		}
	}
	return 0
}

// threadsCPU is the CPU time all of pid's threads have run, from
// /proc/<pid>/task/*/schedstat: nanoseconds, where /proc/<pid>/stat counts
// clock ticks.
func threadsCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		b.Fatalf("pid %d: %v", pid, err)
	}
	var total time.Duration
	for _, task := range tasks {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, task.Name()))
		if err != nil {
			continue // the thread ended meanwhile
		}
		ns, err := strconv.ParseInt(strings.Fields(string(data))[0], 10, 64)
		if err != nil {
			b.Fatalf("schedstat of %d/%s: %v", pid, task.Name(), err)
		}
		total += time.Duration(ns)
	}
	return total
}

// reapedCPU is the CPU time of pid's children that it has waited for
// (cutime + cstime in /proc/<pid>/stat).
func reapedCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatalf("pid %d: %v", pid, err)
	}
	_, children, err := parseStatTimes(string(data))
	if err != nil {
		b.Fatal(err)
	}
	return time.Duration(children) * time.Second / 100 // USER_HZ
}

// parseStatTimes returns utime + stime and cutime + cstime of a
// /proc/<pid>/stat line, in clock ticks.
func parseStatTimes(stat string) (own, children int64, err error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("stat %q: no command name", stat)
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3, the state
	if len(f) < 15 {
		return 0, 0, fmt.Errorf("stat %q: too few fields", stat)
	}
	var v [4]int64
	for k := range v {
		if v[k], err = strconv.ParseInt(f[11+k], 10, 64); err != nil {
			return 0, 0, fmt.Errorf("stat %q: field %d: %w", stat, 14+k, err)
		}
	}
	return v[0] + v[1], v[2] + v[3], nil
}

func copyFile(b *testing.B, from, to string, mode os.FileMode) {
	b.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(to, data, mode); err != nil {
		b.Fatal(err)
	}
}

package resolver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"yakimg/yakiros/config"
	"yakimg/yakiros/control"
	"yakimg/yakiros/supervise"
)

// rssBudget is PID 1's memory budget with 100 components (DESIGN §7).
const rssBudget = 15 << 20

var (
	buildResolver sync.Once
	resolverBin   string
	resolverErr   error
)

// builtResolver builds cmd/graph-resolver once per test binary.
func builtResolver(tb testing.TB) string {
	tb.Helper()
	buildResolver.Do(func() {
		resolverBin = filepath.Join(filepath.Dir(echoServer), "graph-resolver")
		// Static, as the image builds it (builder/gobuild.go).
		cmd := exec.Command("go", "build", "-o", resolverBin, "yakimg/cmd/graph-resolver")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			resolverErr = fmt.Errorf("go build graph-resolver: %v\n%s", err, out)
		}
	})
	if resolverErr != nil {
		tb.Fatal(resolverErr)
	}
	return resolverBin
}

// vmRSS reads a process's resident set size from /proc/<pid>/status.
func vmRSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// BenchmarkRSS100 runs the real graph-resolver (test mode) with 100
// sleeping services, reports its resident memory once all are ACTIVE and
// again after the benchmark's status calls (the larger as MB-RSS), and
// fails over the 15 MB budget. ns/op is one `status` round trip.
func BenchmarkRSS100(b *testing.B) {
	bin := builtResolver(b)
	root := b.TempDir()
	dir, socket := filepath.Join(root, "graph.d"), filepath.Join(root, "ctl.sock")
	os.Mkdir(dir, 0o755)
	for i := range 100 {
		decl(b, dir, fmt.Sprintf("%03d.toml", i), fmt.Sprintf("sleeper-%03d", i), "service",
			"/bin/sleep", []string{"1000"}, []string{"filesystem.run"}, []string{fmt.Sprintf("cap.%d", i)})
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "--config-dir", dir, "--control-socket", socket, "--notify-socket", filepath.Join(root, "notify.sock"),
		"--log-dir", filepath.Join(root, "log"))
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		if _, err := control.Do(context.Background(), socket, control.Request{Command: "poweroff"}); err != nil {
			cmd.Process.Signal(syscall.SIGTERM)
		}
		cmd.Wait()
	}()

	status := func() (control.StatusData, error) {
		var st control.StatusData
		resp, err := control.Do(context.Background(), socket, control.Request{Command: "status"})
		if err == nil && !resp.OK {
			err = fmt.Errorf("%s", resp.Error)
		}
		if err == nil {
			err = json.Unmarshal(resp.Data, &st)
		}
		return st, err
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st, err := status()
		active := 0
		for _, c := range st.Components {
			if c.State == "ACTIVE" {
				active++
			}
		}
		if err == nil && active == 101 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("100 sleepers not ACTIVE: %d active, %v\n%s", active, err, stderr.String())
		}
	}
	rss, err := vmRSS(cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := status(); err != nil {
			b.Fatal(err)
		}
	}
	after, err := vmRSS(cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	rss = max(rss, after)
	b.ReportMetric(float64(rss)/(1<<20), "MB-RSS")
	if rss > rssBudget {
		b.Errorf("graph-resolver with 100 components: VmRSS %.1f MB; budget %d MB", float64(rss)/(1<<20), rssBudget>>20)
	}
}

// resolveBench measures one resolution pass over comps, from all INACTIVE
// to all ACTIVE, with the loop's real decision logic, registry and log
// formatting but a fake starter: no process runs. The fake pids lie above
// the kernel's pid_max, so nothing could ever signal a real process.
func resolveBench(b *testing.B, comps []config.Component) {
	for b.Loop() {
		b.StopTimer()
		l := newLoop(&logger{w: io.Discard}, false, "", nil, nil, errors.New("not in benchmarks"), comps, nil)
		pid := 1 << 23
		l.spawn = func(supervise.Spec) (int, error) { pid++; return pid, nil }
		b.StartTimer()
		started := l.resolve()
		b.StopTimer()
		if len(started) != len(comps) {
			b.Fatalf("one pass started %d of %d components", len(started), len(comps))
		}
		for _, u := range l.units {
			if u.state != Active {
				b.Fatalf("component '%s' is %v after the pass; want ACTIVE", u.Name, u.state)
			}
		}
		b.StartTimer()
	}
}

// BenchmarkResolve10000Chain: c1 requires what c0 provides, c2 what c1
// provides, and so on, declared in reverse order, the worst case for
// passes that repeat until nothing changes (one pass per link).
func BenchmarkResolve10000Chain(b *testing.B) {
	const n = 10000
	comps := make([]config.Component, n)
	for i := range n {
		c := config.Component{Name: fmt.Sprintf("chain-%05d", i), Binary: "/bin/true", Type: config.Service,
			Provides: []string{fmt.Sprintf("cap.%d", i)}}
		if i > 0 {
			c.Requires = []string{fmt.Sprintf("cap.%d", i-1)}
		}
		comps[n-1-i] = c
	}
	resolveBench(b, comps)
}

// BenchmarkResolve10000FanOut: 10,000 components require the capability of
// one root, declared last.
func BenchmarkResolve10000FanOut(b *testing.B) {
	const n = 10000
	comps := make([]config.Component, 0, n+1)
	for i := range n {
		comps = append(comps, config.Component{Name: fmt.Sprintf("leaf-%05d", i), Binary: "/bin/true", Type: config.Service,
			Requires: []string{"cap.root"}, Provides: []string{fmt.Sprintf("cap.%d", i)}})
	}
	comps = append(comps, config.Component{Name: "root", Binary: "/bin/true", Type: config.Service, Provides: []string{"cap.root"}})
	resolveBench(b, comps)
}

package suites

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"yakimg/suites/echoload"
	"yakimg/yakiros/control"
)

// hotSwap proves zero-downtime upgrades: clients that never stop talking
// see no reset, no lost or repeated message and the replies switch to the
// new instance, while the capability stays up; broken new binaries leave
// the old instance serving.
var hotSwap = Suite{
	Name: "hot-swap",
	Cases: []Case{
		{Name: "echo-upgrades-under-load", Timeout: 150 * time.Second, Run: echoUpgradesUnderLoad},
		{Name: "web-keepalive-survives-upgrades", Timeout: 60 * time.Second, Run: webKeepAliveSurvives},
		{Name: "file-read-survives-upgrade", Timeout: 60 * time.Second, Run: fileReadSurvivesUpgrade},
		{Name: "crashing-binary-keeps-old", Timeout: 40 * time.Second, Run: func(t *T) { brokenUpgradeKeepsOld(t, crashOnStart, "exited with status") }},
		{Name: "never-ready-binary-keeps-old", Timeout: 40 * time.Second, Run: func(t *T) { brokenUpgradeKeepsOld(t, neverReady, "keeps serving") }},
	},
}

const (
	echoCapability = "test.echo"
	fileServer     = "test-file-server"
	fileAddr       = "127.0.0.1:7090"
	bigFile        = "big.bin"
	// fileServerGroup is test-file-server's [resources] cgroup.
	fileServerGroup = "hot-swap/test-file-server"
	crashOnStart    = "/usr/local/bin/test-crash-on-start"
	neverReady      = "/usr/local/bin/test-never-ready"

	hotSwapClients  = 64
	hotSwapUpgrades = 10
)

// upgradeResult is what `graphctl --json upgrade` answers.
type upgradeResult struct {
	OldPid     int     `json:"old_pid"`
	NewPid     int     `json:"new_pid"`
	DurationMS float64 `json:"duration_ms"`
	Attempts   []struct {
		Method     string  `json:"method"`
		Outcome    string  `json:"outcome"`
		Detail     string  `json:"detail"`
		FDs        int     `json:"fds"`
		DurationMS float64 `json:"duration_ms"`
	} `json:"attempts"`
}

// upgrade runs `graphctl --json upgrade` and decodes the answer, failed or
// not; err is graphctl's failure.
func (t *T) upgrade(args ...string) (upgradeResult, string, error) {
	var r upgradeResult
	out, stderr, err := t.graphctl(append([]string{"--json", "upgrade"}, args...)...)
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("%v", err) // graphctl did not run at all
	}
	if strings.TrimSpace(out) != "" {
		if jerr := json.Unmarshal([]byte(out), &r); jerr != nil {
			t.Fatalf("graphctl --json upgrade %s: %v in %q", strings.Join(args, " "), jerr, out)
		}
	}
	stderr = strings.TrimSpace(stderr)
	if err != nil && len(args) > 0 {
		// What the service itself said explains a new instance that died.
		stderr += "; " + logEnd(args[0], 8)
	}
	return r, stderr, err
}

// capWatch asks graph-resolver for the capabilities until stopped and
// remembers every time the capability was not UP, and when it last came
// up or went down ("since"). Every poll must show the same since: that
// proves it never went down, even between two polls, which the polls
// alone cannot; the polls add that it never was DEGRADED when asked. It
// asks on the control socket, as graphctl --json caps does, without
// starting a graphctl for every poll.
type capWatch struct {
	capability string
	mu         sync.Mutex
	polls      int
	downs      []string
	failed     []string
	since      []time.Time // distinct, in the order seen
}

// capPollEvery spaces the polls. Since proves the capability never went
// down; the polls sample that it was UP, not DEGRADED, when asked. Each
// costs PID 1, whose loop every upgrade goes through, some 10 ms of CPU
// under TCG: polled every 20 ms they took a fifth of a vCPU and showed in
// hot_swap_avg_ms.
const capPollEvery = 250 * time.Millisecond

func (w *capWatch) run(t *T, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-time.After(capPollEvery):
		}
		w.poll(t)
	}
}

func (w *capWatch) poll(t *T) {
	resp, err := control.Do(t.ctx, control.SocketPath(), control.Request{Command: "caps"})
	if err == nil && !resp.OK {
		err = errors.New(resp.Error)
	}
	var data control.CapsData
	if err == nil {
		err = json.Unmarshal(resp.Data, &data)
	}
	status, since := "missing", time.Time{}
	for _, c := range data.Capabilities {
		if c.Name == w.capability {
			status, since = c.Status, c.Since
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.polls++
	switch {
	case err != nil:
		w.failed = append(w.failed, err.Error())
	case status != "UP":
		w.downs = append(w.downs, status)
	case len(w.since) == 0 || !w.since[len(w.since)-1].Equal(since):
		w.since = append(w.since, since)
	}
}

// verdict is "" when every poll saw the capability UP since the same time.
func (w *capWatch) verdict() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.downs) > 0 || len(w.failed) > 0 || len(w.since) != 1 || w.since[0].IsZero() {
		return fmt.Sprintf("%s was not UP in %d of %d polls (%q), caps failed %d times (%q), and it came up at %d different times %v",
			w.capability, len(w.downs), w.polls, w.downs, len(w.failed), firstOf(w.failed), len(w.since), w.since)
	}
	return ""
}

// echoLoadGroup is the cgroup of the hot-swap suite's clients
// (suites/echoload): outside graph/, which is YakirOS's.
const echoLoadGroup = "/sys/fs/cgroup/yakimg-echo-load"

func echoUpgradesUnderLoad(t *T) {
	waitState(t, echoServer, "ACTIVE", activeWithin)
	self, err := os.Executable() // the runner, by its name in ps
	if err != nil {
		t.Fatalf("%v", err)
	}
	load, err := echoload.Start(t.ctx, echoload.Options{
		Command: []string{self, "echo-load"},
		Addr:    echoAddr, Clients: hotSwapClients, Cgroup: echoLoadGroup,
	})
	if err != nil {
		t.Fatalf("%v", err)
	}
	began := time.Now()
	stop := make(chan struct{})
	watch := &capWatch{capability: echoCapability}
	watch.poll(t) // before the first upgrade
	watchDone := make(chan struct{})
	go func() { defer close(watchDone); watch.run(t, stop) }()
	stopped := false
	stopAll := func() ([]echoload.Client, echoload.Usage, error) {
		stopped = true
		close(stop)
		<-watchDone
		return load.Stop()
	}
	defer func() {
		if !stopped {
			stopAll()
		}
	}()
	// Before the first upgrade and after each, every client must have been
	// answered by the instance now serving, so that each lives through
	// every upgrade in the middle of its conversation.
	allSaw := func(n int) {
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			behind, seen, why := -1, 0, error(nil)
			for i := range hotSwapClients {
				if seen, why = load.Seen(i); seen < n {
					behind = i
					break
				}
			}
			if behind < 0 {
				return
			}
			if why != nil || time.Now().After(deadline) {
				t.Fatalf("client %d saw %d versions, want %d (stopped: %v)", behind, seen, n, why)
			}
		}
	}
	allSaw(1)

	var total float64
	var fds []int
	var handoffMS, totalMS []string
	for i := 1; i <= hotSwapUpgrades; i++ {
		r, stderr, err := t.upgrade(echoServer, "--timeout", "10s")
		if err != nil || len(r.Attempts) == 0 || r.Attempts[0].Method != "fd-passing" || r.Attempts[0].Outcome != "ok" {
			t.Fatalf("upgrade %d of %d: %v %s; attempts %+v", i, hotSwapUpgrades, err, stderr, r.Attempts)
		}
		total += r.DurationMS
		fds = append(fds, r.Attempts[0].FDs)
		handoffMS = append(handoffMS, fmt.Sprintf("%.0f", r.Attempts[0].DurationMS))
		totalMS = append(totalMS, fmt.Sprintf("%.0f", r.DurationMS))
		allSaw(i + 1)
	}
	clients, use, err := stopAll()
	elapsed := time.Since(began)
	watch.poll(t) // after the last one
	if err != nil {
		t.Fatalf("%v", err)
	}
	replies := 0
	for i, c := range clients {
		if c.Err != nil {
			t.Fatalf("client %d of %d: %v", i, len(clients), c.Err)
		}
		// Every client must have seen new code answer after each upgrade
		// it lived through; all of them lived through all of them.
		if len(c.Versions) != hotSwapUpgrades+1 {
			t.Fatalf("client %d saw versions %q; want %d in order, one per instance", i, c.Versions, hotSwapUpgrades+1)
		}
		replies += c.Replies
	}
	if v := watch.verdict(); v != "" {
		t.Fatalf("%s", v)
	}
	avg := total / hotSwapUpgrades
	t.Metric("hot_swap_avg_ms", avg)
	t.Logf("%d clients (their own process, cpu.max %q: %v of CPU, throttled in %d periods), %d upgrades in %v, %d replies (%.0f/s), 0 errors; %s UP in all %d polls, since %s; descriptors handed over %v; handoff ms %s; until the new instance reported ready ms %s (avg %.1f)",
		len(clients), echoload.CPUMax, use.CPU.Round(time.Millisecond), use.Throttled, hotSwapUpgrades, elapsed.Round(time.Millisecond), replies, float64(replies)/elapsed.Seconds(),
		echoCapability, watch.polls, watch.since[0].Format("15:04:05.000"), fds, strings.Join(handoffMS, " "), strings.Join(totalMS, " "), avg)
}

func firstOf(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// webKeepAliveSurvives keeps HTTP/1.1 connections busy with GET / while
// the web server is upgraded: every request on the same connection must
// succeed, and the version answered must change with each upgrade.
func webKeepAliveSurvives(t *T) {
	waitState(t, webServer, "ACTIVE", activeWithin)
	const conns, upgrades = 4, 3
	stop := make(chan struct{})
	type result struct {
		mu       sync.Mutex
		versions []string
		requests int
		err      error
	}
	results := make([]result, conns)
	seen := func(i int) int {
		results[i].mu.Lock()
		defer results[i].mu.Unlock()
		return len(results[i].versions)
	}
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := &results[i]
			conn, err := (&net.Dialer{}).DialContext(t.ctx, "tcp", webAddr)
			if err != nil {
				res.err = err
				return
			}
			defer conn.Close()
			r := bufio.NewReader(conn)
			for {
				select {
				case <-stop:
					return
				default:
				}
				conn.SetDeadline(time.Now().Add(15 * time.Second))
				req, _ := http.NewRequest(http.MethodGet, "http://"+webAddr+"/", nil)
				if err := req.Write(conn); err != nil {
					res.err = fmt.Errorf("connection %d, request %d: %w", i, res.requests, err)
					return
				}
				resp, err := http.ReadResponse(r, req)
				if err != nil {
					res.err = fmt.Errorf("connection %d, request %d: %w", i, res.requests, err)
					return
				}
				body, err := readBody(resp)
				if err != nil || resp.StatusCode != http.StatusOK || resp.Close {
					res.err = fmt.Errorf("connection %d, request %d: %s %q (close %v), %v", i, res.requests, resp.Status, body, resp.Close, err)
					return
				}
				res.mu.Lock()
				res.requests++
				v := strings.TrimSpace(body)
				if len(res.versions) == 0 || res.versions[len(res.versions)-1] != v {
					res.versions = append(res.versions, v)
				}
				res.mu.Unlock()
			}
		}()
	}
	// Every connection is answered by each instance before the next
	// upgrade, so each lives through all of them mid-conversation.
	allSaw := func(n int) {
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			behind := -1
			for i := range results {
				if seen(i) < n {
					behind = i
					break
				}
			}
			if behind < 0 {
				return
			}
			if time.Now().After(deadline) {
				close(stop)
				wg.Wait()
				t.Fatalf("connection %d saw %d versions after 20s; want %d (error: %v)", behind, seen(behind), n, results[behind].err)
			}
		}
	}
	allSaw(1)
	for i := 1; i <= upgrades; i++ {
		r, stderr, err := t.upgrade(webServer, "--timeout", "10s")
		if err != nil || len(r.Attempts) == 0 || r.Attempts[0].Outcome != "ok" {
			close(stop)
			wg.Wait()
			t.Fatalf("upgrade %d of %s: %v %s; attempts %+v", i, webServer, err, stderr, r.Attempts)
		}
		allSaw(i + 1)
	}
	close(stop)
	wg.Wait()
	for i := range results {
		res := &results[i]
		if res.err != nil {
			t.Fatalf("%v", res.err)
		}
		if len(res.versions) != upgrades+1 {
			t.Fatalf("connection %d saw versions %q over %d requests; want %d, one per instance", i, res.versions, res.requests, upgrades+1)
		}
	}
	t.Logf("%d keep-alive connections, %d upgrades: every request answered; versions %q", conns, upgrades, results[0].versions)
}

// fileReadSurvivesUpgrade starts downloading a large file, stops reading
// halfway so the server is blocked mid-send, upgrades the server, then
// reads the rest: the bytes must hash to the digest the header announced,
// and the next request on the same connection is answered by new code.
func fileReadSurvivesUpgrade(t *T) {
	waitState(t, fileServer, "ACTIVE", activeWithin)
	conn, err := (&net.Dialer{}).DialContext(t.ctx, "tcp", fileAddr)
	if err != nil {
		t.Fatalf("connect to %s: %v", fileServer, err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(64 << 10) // keep the server blocked mid-file
	dl, _ := t.ctx.Deadline()
	conn.SetDeadline(dl)
	r := bufio.NewReaderSize(conn, 64<<10)
	get := func() (version string, size int64, sum string) {
		if _, err := fmt.Fprintf(conn, "GET %s\n", bigFile); err != nil {
			t.Fatalf("request %s: %v", bigFile, err)
		}
		header, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("header for %s: %v (%q)", bigFile, err, header)
		}
		var ok string
		if n, _ := fmt.Sscanf(header, "%s %s %d %s", &version, &ok, &size, &sum); n != 4 || ok != "OK" || size <= 0 {
			t.Fatalf("header %q; want \"<version> OK <size> <sha256>\"", header)
		}
		return version, size, sum
	}
	before, size, want := get()
	h := sha256.New()
	half := size / 2
	if _, err := io.CopyN(h, r, half); err != nil {
		t.Fatalf("first half of %s: %v", bigFile, err)
	}
	res, stderr, err := t.upgrade(fileServer, "--timeout", "10s")
	if err != nil || len(res.Attempts) == 0 || res.Attempts[0].Outcome != "ok" {
		t.Fatalf("upgrade of %s mid-download: %v %s; attempts %+v", fileServer, err, stderr, res.Attempts)
	}
	if _, err := io.CopyN(h, r, size-half); err != nil {
		t.Fatalf("second half of %s after the upgrade: %v", bigFile, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		t.Fatalf("%s read across the upgrade has sha256 %s; the server announced %s", bigFile, got, want)
	}
	after, _, _ := get()
	if after == before {
		t.Fatalf("the request after the upgrade was answered by %s, as before it; want the new instance", after)
	}
	// The server has limits: its new instance must run in the same group.
	group, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", res.NewPid))
	if err != nil || !strings.HasSuffix(strings.TrimSpace(string(group)), "/graph/"+fileServerGroup) {
		t.Fatalf("the new instance (pid %d) runs in cgroup %q, %v; want its component's group graph/%s", res.NewPid, group, err, fileServerGroup)
	}
	// Drain the second download so the server is not left blocked.
	io.CopyN(io.Discard, r, size)
	t.Logf("%d bytes read across the upgrade (pid %d → %d, %d descriptors) match sha256 %.12s; next request answered by %s (was %s)",
		size, res.OldPid, res.NewPid, res.Attempts[0].FDs, want, after, before)
}

func readBody(resp *http.Response) (string, error) {
	defer resp.Body.Close()
	var b strings.Builder
	_, err := bufio.NewReader(resp.Body).WriteTo(&b)
	return b.String(), err
}

// brokenUpgradeKeepsOld asks for an upgrade to a binary that cannot take
// over and checks that it fails saying why, and that the old instance
// still runs, still answers and still provides the capability.
func brokenUpgradeKeepsOld(t *T, binary, want string) {
	before := waitState(t, echoServer, "ACTIVE", activeWithin)
	old, _ := findComponent(before, echoServer)
	r, stderr, err := t.upgrade(echoServer, "--binary", binary, "--timeout", "3s")
	if err == nil {
		t.Fatalf("upgrade to %s succeeded (%+v); want it refused", binary, r)
	}
	if !strings.Contains(stderr, want) || !strings.Contains(stderr, "keeps serving") {
		t.Fatalf("upgrade to %s failed with %q; want it to say %q and that the old instance keeps serving", binary, stderr, want)
	}
	after, _ := pollStatus(t, func([]component) string { return "" })
	now, _ := findComponent(after, echoServer)
	if now.State != "ACTIVE" || now.PID != old.PID {
		t.Fatalf("after the failed upgrade %s is %s as pid %d; want ACTIVE, still pid %d", echoServer, now.State, now.PID, old.PID)
	}
	if _, err := echoRoundTrip(t.ctx, echoAddr); err != nil {
		t.Fatalf("the old instance does not answer after the failed upgrade: %v", err)
	}
	out, _, err := t.graphctl("caps")
	if err != nil || !slices.ContainsFunc(strings.Split(out, "\n"), func(l string) bool {
		f := strings.Fields(l)
		return len(f) >= 2 && f[0] == echoCapability && f[1] == "UP"
	}) {
		t.Fatalf("%s is not UP after the failed upgrade: %v\n%s", echoCapability, err, out)
	}
	t.Logf("refused: %s", stderr)
}

// logEnd is the last n lines of a component's log, for a failure message:
// what the service itself said.
func logEnd(component string, n int) string {
	path := filepath.Join(logDir, component+".log")
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("no log: %v", err)
	}
	return fmt.Sprintf("%s ends: %s", path, lastLines(strings.TrimSuffix(string(data), "\n"), n))
}

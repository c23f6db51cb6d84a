package suites

import (
	"bufio"
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
	"syscall"
	"time"

	"yakimg/yakiros/checkpoint"
	"yakimg/yakiros/control"
)

// checkpointing proves CRIU checkpoints of test-checkpoint-service, whose
// counter and messages live only in its memory: checkpoint → kill →
// restore gives the same state back in a process YakirOS supervises again;
// the metadata says what it should; list, rm, cleanup and the quota do what
// they say; a corrupted image is refused and the component starts fresh.
// Then upgrade's fallback chain: CRIU keeps the memory; a dump criu
// refuses hands over to fd passing; a service no level but a restart can
// upgrade is restarted; every attempt is reported with its reason.
var checkpointing = Suite{
	Name: "checkpointing",
	Cases: []Case{
		{Name: "checkpoint-kill-restore-keeps-memory", Timeout: 150 * time.Second, Run: checkpointKillRestore},
		{Name: "restored-process-is-supervised", Timeout: 90 * time.Second, Run: restoredIsSupervised},
		{Name: "checkpoint-stop-then-restore", Timeout: 90 * time.Second, Run: checkpointStopRestore},
		{Name: "metadata-fields", Timeout: 60 * time.Second, Run: metadataFields},
		{Name: "list-rm-usage", Timeout: 90 * time.Second, Run: listRmUsage},
		{Name: "cleanup-keep-quota-max-age", Timeout: 120 * time.Second, Run: cleanupKeepQuotaMaxAge},
		{Name: "corrupt-image-refused-starts-fresh", Timeout: 90 * time.Second, Run: corruptImageRefused},
		{Name: "upgrade-criu-keeps-memory", Timeout: 120 * time.Second, Run: upgradeCRIUKeepsMemory},
		{Name: "upgrade-criu-dump-fails-fd-passing", Timeout: 90 * time.Second, Run: upgradeDumpFailsFDPassing},
		{Name: "upgrade-every-level-fails-to-restart", Timeout: 90 * time.Second, Run: upgradeFallsToRestart},
	},
}

const (
	ckptComp = "test-checkpoint-service"
	ckptAddr = "127.0.0.1:7075"
	ckptCap  = "test.checkpoint"
	ckptDir  = checkpoint.DefaultDir + "/" + ckptComp
)

// restoredPid is the process checkpoint-kill-restore-keeps-memory
// restored, for the next case.
var restoredPid int

// svcState is test-checkpoint-service's /state.
type svcState struct {
	Counter  int      `json:"counter"`
	Messages []string `json:"messages"`
	Pid      int      `json:"pid"`
}

// carriesOn checks that the restored test-checkpoint-service counts on
// from counter, and that YakirOS shows it as the component's process,
// ACTIVE within limit, with its capability UP.
func carriesOn(t *T, pid, counter int, limit time.Duration) {
	if got := strings.TrimSpace(ckptHTTP(t, http.MethodPost, "/increment", "")); got != fmt.Sprint(counter+1) {
		t.Fatalf("the counter went on to %s; want %d", got, counter+1)
	}
	c := waitActive(t, ckptComp, 0, limit)
	if c.Pid != pid {
		t.Fatalf("status shows pid %d; the restored process is %d", c.Pid, pid)
	}
	if s := capStatus(t, ckptCap); s != "UP" {
		t.Fatalf("capability %s is %s after the restore", ckptCap, s)
	}
}

// ckptTransport closes each connection after its response: criu refuses to
// dump a process with an established TCP connection, and an idle keep-alive
// connection left from the last request made a later checkpoint fail.
var ckptTransport = &http.Transport{DisableKeepAlives: true}

func ckptHTTP(t *T, method, path, body string) string {
	req, err := http.NewRequestWithContext(t.ctx, method, "http://"+ckptAddr+path, strings.NewReader(body))
	if err != nil {
		t.Fatalf("%v", err)
	}
	c := http.Client{Timeout: 10 * time.Second, Transport: ckptTransport}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %s %v", method, path, resp.Status, err)
	}
	return string(b)
}

func svcStateOf(t *T) svcState {
	var st svcState
	if err := json.Unmarshal([]byte(ckptHTTP(t, http.MethodGet, "/state", "")), &st); err != nil {
		t.Fatalf("decode /state: %v", err)
	}
	return st
}

// freshState waits until a freshly started service answers (it is ACTIVE
// as soon as it runs, a moment before it listens) and returns its state.
func freshState(t *T) svcState {
	for range 100 {
		c := http.Client{Timeout: 5 * time.Second, Transport: ckptTransport}
		resp, err := c.Get("http://" + ckptAddr + "/state")
		if err == nil {
			resp.Body.Close()
			return svcStateOf(t)
		}
		sleepCtx(t, 100*time.Millisecond)
	}
	return svcStateOf(t)
}

// ckptCmd runs `graphctl --json <args>` and decodes the data into v (if
// there is any); err is graphctl's failure, stderr its message.
func ckptCmd(t *T, v any, args ...string) (stderr string, err error) {
	out, stderr, err := t.graphctl(append([]string{"--json"}, args...)...)
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("%v", err)
	}
	if err == nil && v != nil {
		if jerr := json.Unmarshal([]byte(out), v); jerr != nil {
			t.Fatalf("graphctl --json %s: %v in %q", strings.Join(args, " "), jerr, out)
		}
	}
	return strings.TrimSpace(stderr), err
}

// takeCheckpoint checkpoints the service and returns the answer.
func takeCheckpoint(t *T) control.CheckpointData {
	var d control.CheckpointData
	if _, err := ckptCmd(t, &d, "checkpoint", ckptComp); err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	if d.ID == "" || d.Component != ckptComp {
		t.Fatalf("checkpoint answered %+v", d)
	}
	return d
}

// clearCheckpoints removes every checkpoint of the service.
func clearCheckpoints(t *T) {
	var l control.CheckpointListData
	if _, err := ckptCmd(t, &l, "checkpoint-list", ckptComp); err != nil {
		t.Fatalf("checkpoint-list: %v", err)
	}
	for _, c := range l.Checkpoints {
		if _, err := ckptCmd(t, nil, "checkpoint-rm", ckptComp, c.ID); err != nil {
			t.Fatalf("checkpoint-rm %s: %v", c.ID, err)
		}
	}
}

func killService(t *T, pid int) {
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill %d: %v", pid, err)
	}
	waitStatus(t, 20*time.Second, ckptComp+" noticed dead", func(cs []component) string {
		c, _ := findComponent(cs, ckptComp)
		if c.PID == pid {
			return fmt.Sprintf("%s still %s with pid %d", ckptComp, c.State, pid)
		}
		return ""
	})
}

func checkpointKillRestore(t *T) {
	start := waitActive(t, ckptComp, 0, 60*time.Second)
	clearCheckpoints(t)
	base := freshState(t).Counter
	for range 5 {
		ckptHTTP(t, http.MethodPost, "/increment", "")
	}
	ckptHTTP(t, http.MethodPost, "/message", "alpha")
	ckptHTTP(t, http.MethodPost, "/message", "beta γ")
	before := svcStateOf(t)
	if before.Counter != base+5 || before.Pid != start.Pid {
		t.Fatalf("state before the checkpoint: %+v (counter was %d, pid %d)", before, base, start.Pid)
	}
	t0 := time.Now()
	d := takeCheckpoint(t)
	t.Metric("checkpoint_ms", float64(time.Since(t0).Microseconds())/1000)
	t.Metric("criu_dump_ms", d.DumpMS)
	if svcStateOf(t).Counter != before.Counter {
		t.Fatalf("the checkpoint changed the running service's state")
	}
	// Changed after the checkpoint: the restore must bring back the
	// checkpoint's memory, not this.
	ckptHTTP(t, http.MethodPost, "/increment", "")
	ckptHTTP(t, http.MethodPost, "/message", "after")

	killService(t, start.Pid)
	t1 := time.Now()
	var r control.RestoreData
	if _, err := ckptCmd(t, &r, "restore", ckptComp); err != nil {
		t.Fatalf("restore: %v", err)
	}
	t.Metric("restore_ms", float64(time.Since(t1).Microseconds())/1000)
	t.Metric("criu_restore_ms", r.RestoreMS)
	if r.ID != d.ID || r.Pid <= 0 || r.State != "ACTIVE" {
		t.Fatalf("restore answered %+v; want checkpoint %s, a pid, ACTIVE", r, d.ID)
	}
	after := svcStateOf(t)
	if after.Counter != before.Counter || !slices.Equal(after.Messages, before.Messages) {
		t.Fatalf("restored state %+v; want the checkpoint's counter %d and messages %q", after, before.Counter, before.Messages)
	}
	if after.Pid != r.Pid {
		t.Fatalf("the service answers from pid %d, restore reported %d", after.Pid, r.Pid)
	}
	carriesOn(t, r.Pid, before.Counter, 10*time.Second)
	restoredPid = r.Pid
	h := waitHealthy(t, ckptComp, 30*time.Second)
	t.Logf("counter %d and %d messages back in pid %d (checkpoint %s, dump %.0f ms, restore %.0f ms); health %s after %d checks",
		after.Counter, len(after.Messages), r.Pid, d.ID, d.DumpMS, r.RestoreMS, h.Health, h.HealthChecks)
}

// The restored process is not a child of PID 1's fork: its exit must still
// be seen (reaped by PID 1, mapped to the component) and the component
// restarted fresh.
func restoredIsSupervised(t *T) {
	c := waitActive(t, ckptComp, 0, 30*time.Second)
	if restoredPid == 0 || c.Pid != restoredPid {
		t.Skipf("the service does not run a restored process (pid %d, restored %d): the restore case failed", c.Pid, restoredPid)
	}
	killService(t, c.Pid)
	fresh := waitActive(t, ckptComp, c.Pid, 30*time.Second)
	if st := freshState(t); st.Counter != 0 || len(st.Messages) != 0 || st.Pid != fresh.Pid {
		t.Fatalf("after the restored process died the service is %+v; want a fresh one in pid %d", st, fresh.Pid)
	}
	if fresh.Restarts == 0 {
		t.Fatalf("status counts no restart")
	}
}

func metadataFields(t *T) {
	c := waitActive(t, ckptComp, 0, 30*time.Second)
	before := time.Now().Unix()
	d := takeCheckpoint(t)
	after := time.Now().Unix()
	raw, err := os.ReadFile(filepath.Join(ckptDir, d.ID, checkpoint.MetadataFile))
	if err != nil {
		t.Fatalf("%v", err)
	}
	for _, f := range []string{"component_name", "original_pid", "timestamp", "image_size", "capabilities", "criu_version", "leave_running", "preserve_fds"} {
		if !strings.Contains(string(raw), `"`+f+`": `) {
			t.Fatalf("metadata.json has no %s:\n%s", f, raw)
		}
	}
	m, err := checkpoint.Decode(raw)
	if err != nil {
		t.Fatalf("%v", err)
	}
	var imgs int64
	entries, _ := os.ReadDir(filepath.Join(ckptDir, d.ID))
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && strings.HasSuffix(e.Name(), ".img") {
			imgs += fi.Size()
		}
	}
	switch {
	case m.ComponentName != ckptComp || m.ID != d.ID:
		t.Fatalf("metadata names %s/%s", m.ComponentName, m.ID)
	case m.OriginalPid != c.Pid:
		t.Fatalf("original_pid %d; the service ran as %d", m.OriginalPid, c.Pid)
	case m.Timestamp < before || m.Timestamp > after:
		t.Fatalf("timestamp %d not within [%d, %d]", m.Timestamp, before, after)
	case m.ImageSize <= 0 || m.ImageSize != imgs:
		t.Fatalf("image_size %d; the images hold %d bytes", m.ImageSize, imgs)
	case m.Capabilities != ckptCap:
		t.Fatalf("capabilities %q; want %q", m.Capabilities, ckptCap)
	case m.CriuVersion.Major < 3:
		t.Fatalf("criu_version %v", m.CriuVersion)
	case !m.LeaveRunning:
		t.Fatalf("leave_running false for a checkpoint that left the service running")
	case len(m.SHA256) == 0:
		t.Fatalf("no image digests")
	}
	if err := checkpoint.Verify(checkpoint.Checkpoint{Metadata: m, Path: filepath.Join(ckptDir, d.ID)}); err != nil {
		t.Fatalf("%v", err)
	}
	t.Logf("checkpoint %s: pid %d, %d image bytes, criu %v", m.ID, m.OriginalPid, m.ImageSize, m.CriuVersion)
}

func listRmUsage(t *T) {
	waitActive(t, ckptComp, 0, 30*time.Second)
	clearCheckpoints(t)
	a, b := takeCheckpoint(t), takeCheckpoint(t)
	var l control.CheckpointListData
	if _, err := ckptCmd(t, &l, "checkpoint-list", ckptComp); err != nil {
		t.Fatalf("checkpoint-list: %v", err)
	}
	if len(l.Checkpoints) != 2 || l.Checkpoints[0].ID != b.ID || l.Checkpoints[1].ID != a.ID {
		t.Fatalf("checkpoint-list %+v; want %s then %s", l.Checkpoints, b.ID, a.ID)
	}
	text, _, err := t.graphctl("checkpoint-list")
	if err != nil || !strings.Contains(text, b.ID+": "+ckptComp) || !strings.Contains(text, a.ID+": "+ckptComp) {
		t.Fatalf("checkpoint-list text %q, %v", text, err)
	}
	var u control.CheckpointUsageData
	if _, err := ckptCmd(t, &u, "checkpoint-usage"); err != nil {
		t.Fatalf("checkpoint-usage: %v", err)
	}
	i := slices.IndexFunc(u.Components, func(c control.CheckpointUsage) bool { return c.Component == ckptComp })
	if i < 0 || u.Components[i].Checkpoints != 2 || u.Components[i].Bytes != l.Checkpoints[0].Size+l.Checkpoints[1].Size || u.FreeBytes == 0 {
		t.Fatalf("checkpoint-usage %+v; want 2 checkpoints of %d bytes", u, l.Checkpoints[0].Size+l.Checkpoints[1].Size)
	}
	if _, err := ckptCmd(t, nil, "checkpoint-rm", ckptComp, a.ID); err != nil {
		t.Fatalf("checkpoint-rm: %v", err)
	}
	if _, err := os.Stat(filepath.Join(ckptDir, a.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s still there after checkpoint-rm: %v", a.ID, err)
	}
	if stderr, err := ckptCmd(t, nil, "checkpoint-rm", ckptComp, a.ID); err == nil || !strings.Contains(stderr, "no checkpoint") {
		t.Fatalf("second checkpoint-rm: %v, %q; want an error", err, stderr)
	}
	if _, err := ckptCmd(t, &l, "checkpoint-list", ckptComp); err != nil || len(l.Checkpoints) != 1 || l.Checkpoints[0].ID != b.ID {
		t.Fatalf("after rm, checkpoint-list %+v, %v", l.Checkpoints, err)
	}
}

func cleanupKeepQuotaMaxAge(t *T) {
	waitActive(t, ckptComp, 0, 30*time.Second)
	clearCheckpoints(t)
	cs := []control.CheckpointData{takeCheckpoint(t), takeCheckpoint(t), takeCheckpoint(t)}
	var d control.CheckpointCleanupData
	if _, err := ckptCmd(t, &d, "checkpoint-cleanup", "--keep", "2", ckptComp); err != nil {
		t.Fatalf("cleanup --keep 2: %v", err)
	}
	if len(d.Removed) != 1 || d.Removed[0].ID != cs[0].ID || !strings.Contains(d.Removed[0].Reason, "newest 2") {
		t.Fatalf("cleanup --keep 2 removed %+v; want only %s", d.Removed, cs[0].ID)
	}
	var l control.CheckpointListData
	ckptCmd(t, &l, "checkpoint-list", ckptComp)
	if len(l.Checkpoints) != 2 {
		t.Fatalf("left %+v", l.Checkpoints)
	}
	quota := l.Checkpoints[0].Size + l.Checkpoints[1].Size - 1 // one byte short of both
	if _, err := ckptCmd(t, &d, "checkpoint-cleanup", "--quota", fmt.Sprint(quota), ckptComp); err != nil {
		t.Fatalf("cleanup --quota: %v", err)
	}
	if len(d.Removed) != 1 || d.Removed[0].ID != cs[1].ID || !strings.Contains(d.Removed[0].Reason, "quota") {
		t.Fatalf("cleanup --quota %d removed %+v; want only %s", quota, d.Removed, cs[1].ID)
	}
	if _, err := ckptCmd(t, nil, "checkpoint-cleanup", "--max-age", "soon"); err == nil {
		t.Fatalf("--max-age soon accepted")
	}
	sleepCtx(t, 2100*time.Millisecond) // timestamps are whole seconds
	if _, err := ckptCmd(t, &d, "checkpoint-cleanup", "--max-age", "1s", ckptComp); err != nil {
		t.Fatalf("cleanup --max-age 1s: %v", err)
	}
	if len(d.Removed) != 1 || d.Removed[0].ID != cs[2].ID || !strings.Contains(d.Removed[0].Reason, "older than") {
		t.Fatalf("cleanup --max-age 1s removed %+v; want %s", d.Removed, cs[2].ID)
	}
	if _, err := os.Stat(ckptDir + "/" + cs[2].ID); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s still on disk: %v", cs[2].ID, err)
	}
}

func corruptImageRefused(t *T) {
	c := waitActive(t, ckptComp, 0, 30*time.Second)
	ckptHTTP(t, http.MethodPost, "/increment", "")
	d := takeCheckpoint(t)
	pages, _ := filepath.Glob(filepath.Join(ckptDir, d.ID, "pages-*.img"))
	if len(pages) == 0 {
		t.Fatalf("no pages image in %s", d.Path)
	}
	f, err := os.OpenFile(pages[0], os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("%v", err)
	}
	f.WriteAt([]byte("corrupted by the checkpointing suite"), 0)
	f.Close()
	killService(t, c.Pid)
	stderr, err := ckptCmd(t, nil, "restore", ckptComp, d.ID)
	// Down when the restore is asked, the component is started fresh by
	// the refusal; on a loaded machine its restart policy may have started
	// it again first, and then it keeps running. Either way a fresh one.
	fresh := strings.Contains(stderr, "starting it fresh") || strings.Contains(stderr, "keeps running")
	if err == nil || !strings.Contains(stderr, "corrupt") || !strings.Contains(stderr, filepath.Base(pages[0])) || !fresh {
		t.Fatalf("restore of a corrupted image: %v, %q; want a refusal naming %s and a fresh instance", err, stderr, filepath.Base(pages[0]))
	}
	now := waitActive(t, ckptComp, c.Pid, 30*time.Second)
	if st := freshState(t); st.Counter != 0 || st.Pid != now.Pid {
		t.Fatalf("after the refused restore the service is %+v; want a fresh one in pid %d", st, now.Pid)
	}
	t.Logf("refused: %s", stderr)
}

// checkpoint --stop dumps without leave-running: criu ends the process,
// the component is FAILED ("checkpointed … and stopped") and starts fresh
// by its restart policy; restore brings the dumped memory back.
func checkpointStopRestore(t *T) {
	c := waitActive(t, ckptComp, 0, 30*time.Second)
	ckptHTTP(t, http.MethodPost, "/message", "before stop")
	want := svcStateOf(t)
	var d control.CheckpointData
	if _, err := ckptCmd(t, &d, "checkpoint", ckptComp, "--stop"); err != nil {
		t.Fatalf("checkpoint --stop: %v", err)
	}
	if d.LeaveRunning {
		t.Fatalf("checkpoint --stop answered leave_running true")
	}
	cs := waitStatus(t, 20*time.Second, ckptComp+" stopped by the dump", func(cs []component) string {
		if x, _ := findComponent(cs, ckptComp); x.PID == c.Pid {
			return fmt.Sprintf("%s still %s with pid %d", ckptComp, x.State, c.Pid)
		}
		return ""
	})
	if x, _ := findComponent(cs, ckptComp); x.State == "FAILED" && !strings.Contains(x.Reason, "checkpointed") {
		t.Fatalf("%s FAILED with reason %q; want it to say it was checkpointed", ckptComp, x.Reason)
	}
	var r control.RestoreData
	if _, err := ckptCmd(t, &r, "restore", ckptComp, d.ID); err != nil {
		t.Fatalf("restore: %v", err)
	}
	got := svcStateOf(t)
	if got.Counter != want.Counter || !slices.Equal(got.Messages, want.Messages) || got.Pid != r.Pid {
		t.Fatalf("restored %+v; want counter %d, messages %q in pid %d", got, want.Counter, want.Messages, r.Pid)
	}
}

// upgradeCRIU runs `graphctl --json upgrade <comp> args…`, checks that the
// attempts went as want says ("criu ok", "criu failed, fd-passing ok" …)
// and returns the answer.
func upgradeCRIU(t *T, comp, want string, args ...string) control.UpgradeData {
	var d control.UpgradeData
	stderr, err := ckptCmd(t, &d, append([]string{"upgrade", comp}, args...)...)
	if err != nil {
		t.Fatalf("upgrade %s: %v: %s", comp, err, stderr)
	}
	var got []string
	for _, a := range d.Attempts {
		got = append(got, a.Method+" "+a.Outcome)
		t.Logf("%s: %s %s in %.0f ms: %s", comp, a.Method, a.Outcome, a.DurationMS, a.Detail)
	}
	if strings.Join(got, ", ") != want || d.NewPid <= 0 {
		t.Fatalf("upgrade %s answered %+v; want attempts %q and a pid", comp, d, want)
	}
	return d
}

// A CRIU upgrade (no --binary) keeps everything the service has in memory,
// and its restored process is the component's, ACTIVE with its capability.
func upgradeCRIUKeepsMemory(t *T) {
	c := waitActive(t, ckptComp, 0, 60*time.Second)
	freshState(t)
	for range 3 {
		ckptHTTP(t, http.MethodPost, "/increment", "")
	}
	ckptHTTP(t, http.MethodPost, "/message", "kept by the upgrade")
	before := svcStateOf(t)
	d := upgradeCRIU(t, ckptComp, "criu ok")
	t.Metric("criu_upgrade_ms", d.DurationMS)
	t.Metric("criu_upgrade_attempt_ms", d.Attempts[0].DurationMS)
	if d.OldPid != c.Pid {
		t.Fatalf("upgrade replaced pid %d; the service ran as %d", d.OldPid, c.Pid)
	}
	after := svcStateOf(t)
	if after.Counter != before.Counter || !slices.Equal(after.Messages, before.Messages) || after.Pid != d.NewPid {
		t.Fatalf("after the CRIU upgrade the service is %+v; want counter %d, messages %q in pid %d", after, before.Counter, before.Messages, d.NewPid)
	}
	if got := strings.TrimSpace(ckptHTTP(t, http.MethodPost, "/increment", "")); got != fmt.Sprint(before.Counter+1) {
		t.Fatalf("the counter went on to %s; want %d", got, before.Counter+1)
	}
	if s := waitActive(t, ckptComp, 0, 10*time.Second); s.Pid != d.NewPid {
		t.Fatalf("status shows pid %d; the upgrade restored %d", s.Pid, d.NewPid)
	}
	if s := capStatus(t, ckptCap); s != "UP" {
		t.Fatalf("capability %s is %s after the CRIU upgrade", ckptCap, s)
	}
	h := waitHealthy(t, ckptComp, 30*time.Second)
	t.Logf("counter %d and %d messages kept from pid %d to pid %d in %.0f ms; health %s", after.Counter, len(after.Messages),
		d.OldPid, d.NewPid, d.DurationMS, h.Health)
}

const (
	fallbackComp = "test-criu-fallback"
	fallbackAddr = "127.0.0.1:7076"
	restartComp  = "test-criu-restart"
)

// criu refuses to dump test-criu-fallback; the process runs on and hands
// its sockets over by fd passing: a client connected before the upgrade
// is answered by the new instance on the same connection.
func upgradeDumpFailsFDPassing(t *T) {
	waitActive(t, fallbackComp, 0, 60*time.Second)
	var conn net.Conn
	var err error
	for range 100 { // ACTIVE once ready, but be patient with a slow guest
		if conn, err = net.DialTimeout("tcp", fallbackAddr, 5*time.Second); err == nil {
			break
		}
		sleepCtx(t, 100*time.Millisecond)
	}
	if err != nil {
		t.Fatalf("dial %s: %v", fallbackAddr, err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	echo := func(line string) string {
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := fmt.Fprintln(conn, line); err != nil {
			t.Fatalf("send %q: %v", line, err)
		}
		reply, err := r.ReadString('\n')
		if err != nil || !strings.HasSuffix(reply, " "+line+"\n") {
			t.Fatalf("echo %q: %q, %v", line, reply, err)
		}
		return strings.Fields(reply)[0]
	}
	before := echo("before the upgrade")
	d := upgradeCRIU(t, fallbackComp, "criu failed, fd-passing ok")
	if !strings.Contains(d.Attempts[0].Detail, "criu dump") || !strings.Contains(d.Attempts[0].Detail, "runs on") {
		t.Fatalf("the criu attempt says %q; want criu dump's reason and that the old instance runs on", d.Attempts[0].Detail)
	}
	if d.NewPid == d.OldPid {
		t.Fatalf("fd passing kept pid %d", d.OldPid)
	}
	after := echo("after the upgrade")
	if after == before {
		t.Fatalf("the connection is answered as %q before and after the upgrade; want the new instance", after)
	}
	t.Metric("criu_fallback_upgrade_ms", d.DurationMS)
	t.Logf("same connection answered by %s, then %s (pid %d → %d)", before, after, d.OldPid, d.NewPid)
}

// test-criu-restart speaks no protocol: criu refuses to dump it, fd
// passing gets no answer, a restart runs the new instance.
func upgradeFallsToRestart(t *T) {
	c := waitActive(t, restartComp, 0, 60*time.Second)
	d := upgradeCRIU(t, restartComp, "criu failed, fd-passing failed, restart ok", "--timeout", "2s")
	if !strings.Contains(d.Attempts[0].Detail, "criu dump") || !strings.Contains(d.Attempts[1].Detail, "no handoff result") {
		t.Fatalf("attempts %+v; want criu dump's reason, then fd passing's timeout", d.Attempts)
	}
	if d.OldPid != c.Pid || d.NewPid == c.Pid {
		t.Fatalf("restart: pid %d → %d; the component ran as %d", d.OldPid, d.NewPid, c.Pid)
	}
	if s := waitActive(t, restartComp, c.Pid, 20*time.Second); s.Pid != d.NewPid {
		t.Fatalf("status shows pid %d; the upgrade started %d", s.Pid, d.NewPid)
	}
	if s := capStatus(t, "test.criu-restart"); s != "UP" {
		t.Fatalf("capability test.criu-restart is %s after the restart", s)
	}
}

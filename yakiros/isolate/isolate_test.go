package isolate

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"yakimg/yakiros/config"
)

// TestMain lets the test binary be the helper (as graph-resolver is in
// the guest) and the service it runs, which reports what it sees.
func TestMain(m *testing.M) {
	switch {
	case filepath.Base(os.Args[0]) == HelperName:
		os.Exit(Helper(os.Args[1:], os.Stderr))
	case len(os.Args) > 1 && os.Args[1] == "report":
		report()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// report prints the service's view: pid, host name, /tmp, interfaces.
func report() {
	host, _ := os.Hostname()
	tmp, _ := os.ReadDir("/tmp")
	var names []string
	for _, e := range tmp {
		names = append(names, e.Name())
	}
	ifs, _ := net.Interfaces()
	var nics []string
	for _, i := range ifs {
		nics = append(nics, fmt.Sprintf("%s:%v", i.Name, i.Flags&net.FlagUp != 0))
	}
	fmt.Printf("pid=%d\nhost=%s\ntmp=%s\nifs=%s\nuid=%d\n", os.Getpid(), host, strings.Join(names, ","), strings.Join(nics, ","), os.Getuid())
}

func TestLimits(t *testing.T) {
	r := config.Resources{Cgroup: "apps/web", MemoryMax: 64 << 20, MemoryHigh: 48 << 20, CPUWeight: 50,
		CPUMax: "50000 100000", IOWeight: 200, PidsMax: 32}
	want := []Setting{{"memory.max", "67108864"}, {"memory.oom.group", "1"}, {"memory.high", "50331648"},
		{"cpu.weight", "50"}, {"cpu.max", "50000 100000"}, {"io.weight", "default 200"}, {"pids.max", "32"}}
	got := Limits(r)
	if !slices.Equal(got, want) {
		t.Errorf("Limits = %v, want %v", got, want)
	}
	if c := Controllers(got); !slices.Equal(c, []string{"memory", "cpu", "io", "pids"}) {
		t.Errorf("Controllers = %v", c)
	}
	if got := Limits(config.Resources{Cgroup: "x"}); len(got) != 0 {
		t.Errorf("no limits set, got %v", got)
	}
}

func TestCheckPath(t *testing.T) {
	for _, p := range []string{"web", "apps/web", "a.b/c_d"} {
		if err := CheckPath(p); err != nil {
			t.Errorf("CheckPath(%q) = %v", p, err)
		}
	}
	for _, p := range []string{"", "..", "../x", "a/../../b", "/abs", "a//b", "a/./b", "a/"} {
		if err := CheckPath(p); err == nil {
			t.Errorf("CheckPath(%q) accepted", p)
		}
	}
}

func TestWanted(t *testing.T) {
	plain := config.Component{Name: "web", Resources: config.Resources{Cgroup: "web"}, Isolation: config.Isolation{Root: "/"}}
	if Wanted(plain) {
		t.Error("a component without [resources] or [isolation] wants isolation")
	}
	if Wanted(config.Component{Name: "web"}) {
		t.Error("a component made in code, without defaults, wants isolation")
	}
	for name, change := range map[string]func(*config.Component){
		"limit":     func(c *config.Component) { c.Resources.PidsMax = 5 },
		"path":      func(c *config.Component) { c.Resources.Cgroup = "apps/web" },
		"namespace": func(c *config.Component) { c.Isolation.Namespaces = []string{"uts"} },
		"root":      func(c *config.Component) { c.Isolation.Root = "/srv" },
	} {
		c := plain
		change(&c)
		if !Wanted(c) {
			t.Errorf("%s: not wanted", name)
		}
	}
}

func TestCloneFlags(t *testing.T) {
	f, err := CloneFlags([]string{"ipc", "mount", "net", "pid", "user", "uts"})
	want := uintptr(syscall.CLONE_NEWIPC | syscall.CLONE_NEWNS | syscall.CLONE_NEWNET | syscall.CLONE_NEWPID |
		syscall.CLONE_NEWUSER | syscall.CLONE_NEWUTS)
	if err != nil || f != want {
		t.Errorf("CloneFlags = %#x, %v; want %#x", f, err, want)
	}
	if _, err := CloneFlags([]string{"cgroup"}); err == nil || !strings.Contains(err.Error(), `unknown namespace "cgroup"`) {
		t.Errorf("unknown namespace: %v", err)
	}
}

func TestWrap(t *testing.T) {
	path, argv := Wrap("/sbin/gr", config.Isolation{Root: "/"}, "/bin/svc", []string{"-x"})
	if path != "/bin/svc" || !slices.Equal(argv, []string{"/bin/svc", "-x"}) {
		t.Errorf("no isolation: %s %q", path, argv)
	}
	iso := config.Isolation{Namespaces: []string{"mount", "net", "pid", "uts"}, Root: "/srv/r", Hostname: "box", PrivateTmp: true}
	path, argv = Wrap("/sbin/gr", iso, "/bin/svc", []string{"-x"})
	want := []string{HelperName, "--private-mounts", "--private-tmp", "--proc", "--hostname=box", "--lo", "--root=/srv/r", "--", "/bin/svc", "-x"}
	if path != "/sbin/gr" || !slices.Equal(argv, want) {
		t.Errorf("Wrap = %s %q, want %q", path, argv, want)
	}
}

func needRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: namespaces and cgroups")
	}
}

// TestHelperNamespaces runs the service through the helper in new pid,
// mount, uts and net namespaces and checks what it sees.
func TestHelperNamespaces(t *testing.T) {
	needRoot(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join("/tmp", fmt.Sprintf("isolate-test-%d", os.Getpid()))
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(marker)
	names := []string{"ipc", "mount", "net", "pid", "uts"}
	flags, err := CloneFlags(names)
	if err != nil {
		t.Fatal(err)
	}
	iso := config.Isolation{Namespaces: names, Root: "/", Hostname: "sandbox", PrivateTmp: true}
	// The test binary is in /tmp, which the private /tmp hides; the
	// helper's own binary is still /proc/self/exe.
	path, argv := Wrap(self, iso, "/proc/self/exe", []string{"report"})
	var out, errOut bytes.Buffer
	cmd := &exec.Cmd{Path: path, Args: argv, Stdout: &out, Stderr: &errOut,
		SysProcAttr: &syscall.SysProcAttr{Cloneflags: flags, Setsid: true}}
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %s", err, errOut.String())
	}
	got := out.String()
	for _, want := range []string{"pid=1\n", "host=sandbox\n", "tmp=\n", "ifs=lo:true\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("service saw %q, want %q in it", got, want)
		}
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("the host's /tmp changed: %v", err)
	}
	if h, _ := os.Hostname(); h == "sandbox" {
		t.Error("the host name leaked out of the uts namespace")
	}
}

// TestHelperUserNamespace: root in a user namespace whose uid_map maps
// it to 100000, with a host name of its own.
func TestHelperUserNamespace(t *testing.T) {
	needRoot(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// Root inside is uid 100000 outside: it needs a copy of the test
	// binary that others may run.
	dir, err := os.MkdirTemp("", "isolate-userns-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	self = filepath.Join(dir, "isolate.test")
	if err := os.WriteFile(self, data, 0o755); err != nil {
		t.Fatal(err)
	}
	names := []string{"user", "uts"}
	flags, err := CloneFlags(names)
	if err != nil {
		t.Fatal(err)
	}
	idmap := []config.IDMap{{Inside: 0, Outside: 100000, Count: 65536}}
	iso := config.Isolation{Namespaces: names, Root: "/", Hostname: "userns", UIDMap: idmap, GIDMap: idmap}
	cred := Credential(iso)
	if cred == nil || cred.Uid != 0 || cred.Gid != 0 {
		t.Fatalf("Credential = %+v, want root", cred)
	}
	path, argv := Wrap(self, iso, self, []string{"report"})
	var out, errOut bytes.Buffer
	maps := IDMaps(idmap)
	cmd := &exec.Cmd{Path: path, Args: argv, Stdout: &out, Stderr: &errOut,
		SysProcAttr: &syscall.SysProcAttr{Cloneflags: flags, Setsid: true, UidMappings: maps, GidMappings: maps, Credential: cred}}
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %s", err, errOut.String())
	}
	for _, want := range []string{"host=userns\n", "uid=0\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("service saw %q, want %q in it", out.String(), want)
		}
	}
}

// TestHelperFailure: a helper that cannot set up says so and exits
// HelperFailed, without running the service.
func TestHelperFailure(t *testing.T) {
	var errOut bytes.Buffer
	// Without a new uts namespace and with a root that does not exist.
	code := Helper([]string{"--root=/nonexistent-root", "--", "/bin/true"}, &errOut)
	if code != HelperFailed || !strings.Contains(errOut.String(), "change root to /nonexistent-root") {
		t.Errorf("Helper = %d, %q", code, errOut.String())
	}
}

// cgroupTop finds a cgroup v2 mount to test in: /sys/fs/cgroup, or the
// "unified" mount of a hybrid host, and makes a group of the test's own in
// it.
func cgroupTop(t *testing.T) string {
	needRoot(t)
	var mount string
	for _, d := range []string{DefaultMount, filepath.Join(DefaultMount, "unified")} {
		if IsCgroup2(d) {
			mount = d
			break
		}
	}
	if mount == "" {
		t.Skip("needs a cgroup v2 mount: neither /sys/fs/cgroup nor /sys/fs/cgroup/unified is one")
	}
	top := filepath.Join(mount, fmt.Sprintf("yakiros-isolate-test-%d", os.Getpid()))
	if err := os.Mkdir(top, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Children first.
		var dirs []string
		filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		slices.Reverse(dirs)
		for _, d := range dirs {
			os.Remove(d)
		}
	})
	return top
}

// TestGroupLifecycle clones a process into a nested group, kills the group,
// sees the watcher report it empty and removes it.
func TestGroupLifecycle(t *testing.T) {
	top := cgroupTop(t)
	h, err := Open(top)
	if err != nil {
		t.Fatal(err)
	}
	g, err := h.Create("apps/web", config.Resources{Cgroup: "apps/web"})
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Add(g); err != nil {
		t.Fatal(err)
	}
	// A shell with a child of its own: the kill must take both.
	cmd := exec.Command("/bin/sh", "-c", "sleep 60 & exec sleep 60")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: g.FD()}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", cmd.Process.Pid))
	if err != nil || !strings.HasSuffix(strings.TrimSpace(string(cg)), "/"+Dir+"/apps/web") {
		t.Errorf("process cgroup %q (%v), want it in %s", cg, err, g.Path)
	}
	if busy, err := g.Populated(); !busy || err != nil {
		t.Errorf("Populated = %v, %v", busy, err)
	}
	if err := g.Remove(); !errors.Is(err, ErrBusy) {
		t.Errorf("Remove of a populated group = %v, want ErrBusy", err)
	}
	if _, err := h.Create("apps/web", config.Resources{Cgroup: "apps/web"}); err == nil {
		t.Error("Create reused a group with processes in it")
	}
	if err := g.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	waitEmpty(t, w, g)
	if err := g.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(g.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("group directory left: %v", err)
	}
}

func waitEmpty(t *testing.T, w *Watcher, g *Group) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case <-w.Pending():
			for _, ev := range w.Take() {
				if ev.Group == g && ev.Empty {
					return
				}
			}
		case <-deadline:
			t.Fatal("no event for the emptied group")
		}
	}
}

// TestPidsLimit: a group with pids_max refuses the fork past it. Needs the
// pids controller on cgroup v2.
func TestPidsLimit(t *testing.T) {
	top := cgroupTop(t)
	h, err := Open(top)
	if err != nil {
		t.Fatal(err)
	}
	have, _ := os.ReadFile(filepath.Join(h.Base(), "cgroup.controllers"))
	if !slices.Contains(strings.Fields(string(have)), "pids") {
		t.Skipf("needs the pids controller on cgroup v2; %s offers %q (cgroup v1 has it here)", h.Base(), have)
	}
	g, err := h.Create("limited", config.Resources{Cgroup: "limited", PidsMax: 3})
	if err != nil {
		t.Fatal(err)
	}
	out, err := (&exec.Cmd{Path: "/bin/sh", Args: []string{"sh", "-c", "for i in 1 2 3 4 5; do sleep 5 & done; wait"},
		SysProcAttr: &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: g.FD()}}).CombinedOutput()
	if !strings.Contains(string(out), "fork") && !strings.Contains(string(out), "Resource temporarily unavailable") {
		t.Errorf("forking past pids.max 3 did not fail: %q %v", out, err)
	}
	g.Kill()
}

// Flat-keyed cgroup files are read whole and looked up by key; a missing
// file reads as not existing (OOMKills relies on it for groups without the
// memory controller).
func TestReadKey(t *testing.T) {
	dir := t.TempDir()
	stat := filepath.Join(dir, "cpu.stat")
	text := "usage_usec 1234\nuser_usec 1000\nsystem_usec 234\nnr_periods 0\nnr_throttled 7\nthrottled_usec 89\n"
	if err := os.WriteFile(stat, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]int64{"usage_usec": 1234, "nr_throttled": 7, "throttled_usec": 89} {
		if v, err := readKey(stat, key); err != nil || v != want {
			t.Errorf("readKey(%s) = %d, %v; want %d", key, v, err, want)
		}
	}
	if _, err := readKey(stat, "usage"); err == nil || !strings.Contains(err.Error(), `no "usage"`) {
		t.Errorf("a key that is only a prefix: %v; want no \"usage\"", err)
	}
	if _, err := keyValue([]byte("oom_kill many\n"), "oom_kill"); err == nil {
		t.Error("a value that is not a number was accepted")
	}
	if _, err := readKey(filepath.Join(dir, "memory.events"), "oom_kill"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v; want ErrNotExist", err)
	}
	if n := readNumber(stat); n != -1 {
		t.Errorf("readNumber of a keyed file = %d; want -1", n)
	}
	one := filepath.Join(dir, "memory.current")
	if err := os.WriteFile(one, []byte("8192\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n := readNumber(one); n != 8192 {
		t.Errorf("readNumber = %d; want 8192", n)
	}
}

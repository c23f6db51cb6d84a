// Package isolate puts components into cgroup v2 groups with limits and
// into namespaces (docs/ISOLATION.md).
//
// Every isolated component gets a group below /sys/fs/cgroup/graph
// (Hierarchy.Create): the controllers are enabled on every level down to
// it, its limits are written before anything runs in it, and the process
// is cloned straight into it (Group.FD with SysProcAttr.CgroupFD), so not
// one instruction of the component runs outside its limits. When the
// component ends its group is killed (cgroup.kill) and removed.
// A Watcher reports OOM kills (memory.events) and emptied groups
// (cgroup.events) through inotify, never by polling.
//
// Namespaces are created by the clone itself (CloneFlags); what must
// happen inside them before the service runs (private mount propagation, a
// private /tmp, /proc for a new pid namespace, the root, the host name,
// loopback up) is done by a helper, Wrap's re-execution of PID 1's own
// binary, which then executes the service (Helper).
package isolate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"yakimg/yakiros/config"
)

// DefaultMount is where PID 1 mounts cgroup v2; the components' groups are
// below its Dir.
const (
	DefaultMount = "/sys/fs/cgroup"
	Dir          = "graph"
)

// Wanted reports whether c asks for anything of this package: a limit, a
// cgroup path other than its name, a namespace or a root. A component that
// does not runs exactly as without isolation.
func Wanted(c config.Component) bool {
	r := c.Resources
	if r.Cgroup == c.Name {
		r.Cgroup = "" // the default
	}
	return r != (config.Resources{}) ||
		len(c.Isolation.Namespaces) > 0 || (c.Isolation.Root != "" && c.Isolation.Root != "/")
}

// Setting is one control file of a group and what is written to it.
type Setting struct {
	File, Value string
}

// Limits lists the control files r sets, in a fixed order. memory.oom.group
// comes with memory_max: an OOM kill takes the whole component, which then
// fails and restarts as one, instead of living on with a part missing.
func Limits(r config.Resources) []Setting {
	var s []Setting
	if r.MemoryMax > 0 {
		s = append(s, Setting{"memory.max", strconv.FormatInt(r.MemoryMax, 10)},
			Setting{"memory.oom.group", "1"})
	}
	if r.MemoryHigh > 0 {
		s = append(s, Setting{"memory.high", strconv.FormatInt(r.MemoryHigh, 10)})
	}
	if r.CPUWeight > 0 {
		s = append(s, Setting{"cpu.weight", strconv.Itoa(r.CPUWeight)})
	}
	if r.CPUMax != "" {
		s = append(s, Setting{"cpu.max", r.CPUMax})
	}
	if r.IOWeight > 0 {
		s = append(s, Setting{"io.weight", "default " + strconv.Itoa(r.IOWeight)})
	}
	if r.PidsMax > 0 {
		s = append(s, Setting{"pids.max", strconv.Itoa(r.PidsMax)})
	}
	return s
}

// Controllers lists the controllers the settings need, each once, in the
// order of settings.
func Controllers(settings []Setting) []string {
	var out []string
	for _, s := range settings {
		c, _, _ := strings.Cut(s.File, ".")
		if !contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// CheckPath checks a group path relative to the graph directory: clean,
// relative and not leaving it. (config checks it at load; this keeps a
// path that did not come from there from escaping.)
func CheckPath(rel string) error {
	if rel == "" || !filepath.IsLocal(rel) || filepath.Clean(rel) != rel {
		return fmt.Errorf("cgroup path %q: must be a clean relative path below %s", rel, Dir)
	}
	return nil
}

// Mount mounts cgroup v2 on dir unless it is a cgroup v2 mount already.
// Only PID 1 calls it: anywhere else the mounts are the host's.
func Mount(dir string) error {
	if IsCgroup2(dir) {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("mount cgroup2 on %s: %w", dir, err)
	}
	if err := unix.Mount("cgroup2", dir, "cgroup2", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "nsdelegate"); err != nil {
		return fmt.Errorf("mount cgroup2 on %s: %w", dir, err)
	}
	return nil
}

// IsCgroup2 reports whether dir is the root of a cgroup v2 mount (or a
// directory in one).
func IsCgroup2(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

// Hierarchy is the graph directory of a cgroup v2 mount.
type Hierarchy struct {
	top  string // the mount (or a group in it) that holds Dir
	base string // top/Dir
}

// Open makes top/graph (top being a cgroup v2 mount, normally
// DefaultMount) and enables every controller top offers in top and in
// graph, so that every group below can use them.
func Open(top string) (*Hierarchy, error) {
	if !IsCgroup2(top) {
		return nil, fmt.Errorf("cgroup v2: %s is not a cgroup2 mount", top)
	}
	h := &Hierarchy{top: top, base: filepath.Join(top, Dir)}
	if err := os.Mkdir(h.base, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("cgroup v2: %w", err)
	}
	for _, d := range []string{top, h.base} {
		if err := enableAll(d); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// Base is the graph directory, the parent of every component group.
func (h *Hierarchy) Base() string { return h.base }

// enableAll enables in dir's cgroup.subtree_control every controller dir
// has (cgroup.controllers), one at a time so that one the kernel refuses
// names itself.
func enableAll(dir string) error {
	data, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return fmt.Errorf("cgroup v2: %w", err)
	}
	enabled, err := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
	if err != nil {
		return fmt.Errorf("cgroup v2: %w", err)
	}
	have := strings.Fields(string(enabled))
	for _, c := range strings.Fields(string(data)) {
		if contains(have, c) {
			continue
		}
		if err := write(dir, "cgroup.subtree_control", "+"+c); err != nil {
			return fmt.Errorf("cgroup v2: enable controller %s: %w", c, err)
		}
	}
	return nil
}

func write(dir, file, value string) error {
	p := filepath.Join(dir, file)
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", value, p, err)
	}
	return nil
}

// Group is one component's cgroup, open for cloning into.
type Group struct {
	Rel    string // below the graph directory
	Path   string // absolute
	Limits []Setting
	dir    *os.File
}

// Create makes the group rel (a path below the graph directory) with the
// controllers enabled on every level above it, writes its limits and opens
// it. A group left over from an earlier process is refused while it still
// holds processes, and reused when empty.
func (h *Hierarchy) Create(rel string, r config.Resources) (*Group, error) {
	if err := CheckPath(rel); err != nil {
		return nil, err
	}
	limits := Limits(r)
	parts := strings.Split(rel, string(filepath.Separator))
	dir := h.base
	for i, p := range parts {
		dir = filepath.Join(dir, p)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("cgroup %s: %w", rel, err)
		}
		if i < len(parts)-1 {
			if err := enableAll(dir); err != nil {
				return nil, fmt.Errorf("cgroup %s: %w", rel, err)
			}
		}
	}
	g := &Group{Rel: rel, Path: dir, Limits: limits}
	if busy, err := g.Populated(); err != nil || busy {
		if err == nil {
			err = errors.New("still holds processes of an earlier instance")
		}
		return nil, fmt.Errorf("cgroup %s: %w", rel, err)
	}
	have, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", rel, err)
	}
	for _, c := range Controllers(limits) {
		if !contains(strings.Fields(string(have)), c) {
			return nil, fmt.Errorf("cgroup %s: controller %q is not available (the kernel offers %q)", rel, c, strings.TrimSpace(string(have)))
		}
	}
	for _, s := range limits {
		if err := write(dir, s.File, s.Value); err != nil {
			return nil, fmt.Errorf("cgroup %s: %w", rel, err)
		}
	}
	g.dir, err = os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", rel, err)
	}
	return g, nil
}

// FD is the group's directory descriptor, for SysProcAttr.CgroupFD.
func (g *Group) FD() int { return int(g.dir.Fd()) }

// Populated reports whether any process is in the group or below it.
func (g *Group) Populated() (bool, error) {
	v, err := readKey(filepath.Join(g.Path, "cgroup.events"), "populated")
	return v != 0, err
}

// Kill kills every process in the group and below (cgroup.kill).
func (g *Group) Kill() error {
	return write(g.Path, "cgroup.kill", "1")
}

// ErrBusy is Remove's error while processes are still leaving the group.
var ErrBusy = errors.New("group still holds processes")

// Remove closes the group and removes its directory; it fails with ErrBusy
// while killed processes are still on their way out (a Watcher reports
// when the group is empty). The parents stay: other groups may use them.
func (g *Group) Remove() error {
	if g.dir != nil {
		g.dir.Close()
		g.dir = nil
	}
	err := unix.Rmdir(g.Path)
	switch {
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("remove cgroup %s: %w", g.Rel, ErrBusy)
	case err != nil && !errors.Is(err, unix.ENOENT):
		return fmt.Errorf("remove cgroup %s: %w", g.Rel, err)
	}
	return nil
}

// OOMKills is the group's count of OOM kills so far (memory.events
// oom_kill); 0 without the memory controller.
func (g *Group) OOMKills() (int64, error) {
	v, err := readKey(filepath.Join(g.Path, "memory.events"), "oom_kill")
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	return v, err
}

// Usage is what a group uses now; -1 where its controller is off.
type Usage struct {
	MemoryCurrent int64 `json:"memory_current"`
	PidsCurrent   int64 `json:"pids_current"`
	CPUUsageUS    int64 `json:"cpu_usage_usec"`
	NrThrottled   int64 `json:"nr_throttled"`
	ThrottledUS   int64 `json:"throttled_usec"`
	OOMKills      int64 `json:"oom_kills"`
}

// Usage reads the group's current usage. Reading cgroup files does not
// block, so the event loop may call it; `graphctl status` does, for every
// isolated component, so it reads each file once (cpu.stat is the dear
// one: reading it flushes the kernel's per-CPU statistics).
func (g *Group) Usage() Usage {
	u := Usage{MemoryCurrent: -1, PidsCurrent: -1, CPUUsageUS: -1, NrThrottled: -1, ThrottledUS: -1, OOMKills: -1}
	u.MemoryCurrent = readNumber(filepath.Join(g.Path, "memory.current"))
	u.PidsCurrent = readNumber(filepath.Join(g.Path, "pids.current"))
	if stat, err := readCgroupFile(filepath.Join(g.Path, "cpu.stat")); err == nil {
		for key, dst := range map[string]*int64{"usage_usec": &u.CPUUsageUS, "nr_throttled": &u.NrThrottled, "throttled_usec": &u.ThrottledUS} {
			if v, err := keyValue(stat, key); err == nil {
				*dst = v
			}
		}
	}
	if v, err := readKey(filepath.Join(g.Path, "memory.events"), "oom_kill"); err == nil {
		u.OOMKills = v
	}
	return u
}

// readCgroupFile reads a small cgroup file with plain system calls: kernfs
// files can be polled, so os.ReadFile would register each one with Go's
// network poller and unregister it on close, which doubles the system
// calls of a status request.
func readCgroupFile(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var data []byte
	buf := make([]byte, 4096)
	for {
		n, err := unix.Read(fd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return data, nil
		}
		data = append(data, buf[:n]...)
	}
}

func readNumber(path string) int64 {
	data, err := readCgroupFile(path)
	if err != nil {
		return -1
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// readKey reads the value of key from a flat-keyed cgroup file ("key
// value" lines), as cgroup.events, memory.events and cpu.stat are.
func readKey(path, key string) (int64, error) {
	data, err := readCgroupFile(path)
	if err != nil {
		return 0, err
	}
	v, err := keyValue(data, key)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// keyValue finds key in the text of a flat-keyed file.
func keyValue(data []byte, key string) (int64, error) {
	for line := range strings.Lines(string(data)) {
		k, v, ok := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
		if ok && k == key {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s: %w", key, err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("no %q", key)
}

// cloneFlags maps namespace names (config's spelling) to clone flags.
var cloneFlags = map[string]uintptr{
	"ipc":   syscall.CLONE_NEWIPC,
	"mount": syscall.CLONE_NEWNS,
	"net":   syscall.CLONE_NEWNET,
	"pid":   syscall.CLONE_NEWPID,
	"user":  syscall.CLONE_NEWUSER,
	"uts":   syscall.CLONE_NEWUTS,
}

// procNames is each namespace's name in /proc/self/ns.
var procNames = map[string]string{"ipc": "ipc", "mount": "mnt", "net": "net", "pid": "pid", "user": "user", "uts": "uts"}

// CloneFlags returns the clone flags that create the named namespaces. An
// unknown name, or one whose namespace this kernel lacks (no
// /proc/self/ns entry), is an error rather than a namespace silently left
// out.
func CloneFlags(names []string) (uintptr, error) {
	var flags uintptr
	for _, n := range names {
		f, ok := cloneFlags[n]
		if !ok {
			return 0, fmt.Errorf("unknown namespace %q", n)
		}
		if _, err := os.Lstat("/proc/self/ns/" + procNames[n]); err != nil {
			return 0, fmt.Errorf("namespace %s: the kernel does not offer it: %w", n, err)
		}
		flags |= f
	}
	return flags, nil
}

// IDMaps converts declared id maps for SysProcAttr.
func IDMaps(maps []config.IDMap) []syscall.SysProcIDMap {
	var out []syscall.SysProcIDMap
	for _, m := range maps {
		out = append(out, syscall.SysProcIDMap{ContainerID: m.Inside, HostID: m.Outside, Size: m.Count})
	}
	return out
}

// Credential is who the service is inside its user namespace: root if the
// maps cover id 0, else the first mapped id. Without it the child would
// keep PID 1's own ids, which the namespace does not map: it would be no
// one inside and still root outside. nil without a user namespace or maps.
func Credential(iso config.Isolation) *syscall.Credential {
	if !contains(iso.Namespaces, "user") || len(iso.UIDMap) == 0 || len(iso.GIDMap) == 0 {
		return nil
	}
	// setgroups is denied in the namespace (Go writes "deny" before
	// gid_map), so the supplementary groups are left empty.
	return &syscall.Credential{Uid: uint32(inside(iso.UIDMap)), Gid: uint32(inside(iso.GIDMap)), NoSetGroups: true}
}

func inside(maps []config.IDMap) int {
	for _, m := range maps {
		if m.Inside == 0 {
			return 0
		}
	}
	return maps[0].Inside
}

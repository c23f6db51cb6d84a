package machine

import (
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestUnmountTargets(t *testing.T) {
	table := `/dev/vda2 / ext4 rw,relatime 0 0
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
cgroup2 /sys/fs/cgroup cgroup2 rw 0 0
devtmpfs /dev devtmpfs rw,nosuid,size=4k,mode=755 0 0
devpts /dev/pts devpts rw 0 0
tmpfs /run tmpfs rw,nosuid,nodev,mode=755 0 0
/dev/vda3 /checkpoint ext4 rw,relatime 0 0
tmpfs /run/user/0 tmpfs rw 0 0
/dev/vda4 /srv/my\040data ext4 rw 0 0
tmpfs /srv/my\040data/tmp tmpfs rw 0 0
/dev/vda5 /devices ext4 rw 0 0
`
	got := unmountTargets(table)
	want := []string{"/devices", "/srv/my data/tmp", "/srv/my data", "/run/user/0", "/checkpoint"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("unmountTargets = %q; want %q", got, want)
	}
}

func TestUnmountTargetsOfThisHost(t *testing.T) {
	table, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range unmountTargets(string(table)) {
		if target == "/" || target == "/proc" || strings.HasPrefix(target, "/dev/") {
			t.Errorf("unmountTargets(/proc/self/mounts) includes %q", target)
		}
	}
}

func TestIsMountPoint(t *testing.T) {
	for dir, want := range map[string]bool{"/proc": true, "/": true, t.TempDir(): false} {
		got, err := isMountPoint(dir)
		if err != nil || got != want {
			t.Errorf("isMountPoint(%s) = %v, %v; want %v", dir, got, err, want)
		}
	}
	if _, err := isMountPoint(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("isMountPoint(missing) succeeded")
	}
}

// mountEarly really mounts the kernel filesystems, in a private mount
// namespace of one locked thread so the host never sees them, and a second
// run finds them mounted and leaves them alone.
func TestMountEarly(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts filesystems")
	}
	root := t.TempDir()
	type result struct {
		first, second []error
		magic         map[string]int64
		before, after int
		err           error
	}
	done := make(chan result)
	go func() {
		// Never unlocked: the thread, and with it the namespace, ends
		// with this goroutine.
		runtime.LockOSThread()
		var r result
		defer func() { done <- r }()
		if r.err = unix.Unshare(unix.CLONE_NEWNS); r.err != nil {
			return
		}
		if r.err = unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); r.err != nil {
			return
		}
		count := func() int {
			data, _ := os.ReadFile("/proc/thread-self/mounts")
			return strings.Count(string(data), " "+root+"/")
		}
		r.first = mountEarly(root)
		r.before = count()
		r.second = mountEarly(root)
		r.after = count()
		r.magic = map[string]int64{}
		for _, m := range earlyMounts {
			var st unix.Statfs_t
			if err := unix.Statfs(filepath.Join(root, m.target), &st); err == nil {
				r.magic[m.target] = st.Type
			}
		}
	}()
	r := <-done
	if r.err != nil {
		t.Fatalf("private mount namespace: %v", r.err)
	}
	if len(r.first) != 0 || len(r.second) != 0 {
		t.Fatalf("mountEarly errors: first %v, second %v", r.first, r.second)
	}
	want := map[string]int64{
		"/proc": unix.PROC_SUPER_MAGIC, "/sys": unix.SYSFS_MAGIC, "/dev": unix.TMPFS_MAGIC,
		"/run": unix.TMPFS_MAGIC, "/dev/pts": unix.DEVPTS_SUPER_MAGIC,
	}
	if !reflect.DeepEqual(r.magic, want) {
		t.Errorf("filesystem types after mountEarly = %#x; want %#x", r.magic, want)
	}
	if r.before != len(earlyMounts) || r.after != r.before {
		t.Errorf("mounts under root: %d after the first run, %d after the second; want %d both times",
			r.before, r.after, len(earlyMounts))
	}
}

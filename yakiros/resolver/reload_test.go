package resolver

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"yakimg/yakiros/control"
)

// Editing the config directory reloads it (inotify, debounced): unchanged
// components keep their process, a changed one and its dependent restart,
// a removed one stops, a new one starts, and one whose file turns invalid
// is left running. graphctl reload and SIGHUP reload the same way.
func TestReload(t *testing.T) {
	in := newInstance(t)
	sleep := []string{"1000"}
	decl(t, in.dir, "keep.toml", "keep", "service", "/bin/sleep", sleep, nil, nil)
	decl(t, in.dir, "edit.toml", "edit", "service", "/bin/sleep", sleep, nil, []string{"cap.edit"})
	decl(t, in.dir, "dep.toml", "dep", "service", "/bin/sleep", sleep, []string{"cap.edit"}, nil)
	decl(t, in.dir, "gone.toml", "gone", "service", "/bin/sleep", sleep, nil, nil)
	decl(t, in.dir, "typo.toml", "typo", "service", "/bin/sleep", sleep, nil, nil)
	decl(t, in.dir, "once.toml", "once", "oneshot", "/bin/true", nil, nil, []string{"cap.once"})
	in.start()
	before := in.waitFor("everything", states(map[string]string{
		"keep": "ACTIVE", "edit": "ACTIVE", "dep": "ACTIVE", "gone": "ACTIVE", "typo": "ACTIVE", "once": "DONE"}))
	pid := func(st control.StatusData, name string) int { return find(st, name).Pid }

	// An editor's save: a temporary file renamed over the old one.
	tmp := t.TempDir()
	decl(t, tmp, "edit.toml", "edit", "service", "/bin/sleep", []string{"2000"}, nil, []string{"cap.edit"})
	if err := os.Rename(filepath.Join(tmp, "edit.toml"), filepath.Join(in.dir, "edit.toml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(in.dir, "gone.toml")); err != nil {
		t.Fatal(err)
	}
	decl(t, in.dir, "new.toml", "new", "service", "/bin/sleep", sleep, []string{"cap.once"}, nil)
	if err := os.WriteFile(filepath.Join(in.dir, "typo.toml"), []byte("[component]\nname = \"typo\"\nbinary = 42\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	after := in.waitFor("the reload", func(st control.StatusData) bool {
		return find(st, "new").State == "ACTIVE" && find(st, "gone").Name == "" &&
			find(st, "edit").State == "ACTIVE" && pid(st, "edit") != pid(before, "edit") &&
			find(st, "dep").State == "ACTIVE" && pid(st, "dep") != pid(before, "dep")
	})
	for _, name := range []string{"keep", "typo"} {
		if pid(after, name) != pid(before, name) {
			t.Errorf("%s: pid %d after the reload, %d before; want it untouched", name, pid(after, name), pid(before, name))
		}
	}
	if c := find(after, "once"); c.State != "DONE" || c.Restarts != 0 {
		t.Errorf("once = %+v; want DONE and not run again", c)
	}
	for _, name := range []string{"edit", "gone", "dep"} {
		if !gone(pid(before, name)) {
			t.Errorf("%s's old process %d still exists", name, pid(before, name))
		}
	}
	var names []string
	for _, c := range after.Components {
		names = append(names, c.Name)
	}
	if got := strings.Join(names, " "); got != "kernel dep edit keep new once typo" {
		t.Errorf("components after the reload: %s; want the kernel, then file order, then the kept one", got)
	}
	if cmd := readFile("/proc/" + strconv.Itoa(pid(after, "edit")) + "/cmdline")(); cmd != "/bin/sleep\x002000\x00" {
		t.Errorf("edit runs %q; want the new declaration", cmd)
	}
	if want := "reloaded " + in.dir + " (change in " + in.dir + "): "; !strings.Contains(in.log.String(), want) {
		t.Errorf("log lacks %q", want)
	}

	// Nothing changed since: graphctl reload says so, and lists the
	// rejected file and the component it keeps.
	code, out, errOut := in.ctl("reload")
	wantPrefix := "Reloaded " + in.dir + ": 5 unchanged, 0 changed, 0 removed, 0 added, 1 rejected, 1 kept as they were\n" +
		"  kept (file rejected): typo\n  rejected: " + filepath.Join(in.dir, "typo.toml") + ":3: "
	if code != 0 || !strings.HasPrefix(out, wantPrefix) || strings.Count(out, "\n") != 3 {
		t.Errorf("graphctl reload = %d, %q, %q; want it to start %q", code, out, errOut, wantPrefix)
	}
	code, out, _ = in.ctl("--json", "reload")
	var d control.ReloadData
	if err := json.Unmarshal([]byte(out), &d); code != 0 || err != nil || len(d.Unchanged) != 5 || len(d.Rejected) != 1 ||
		len(d.Changed)+len(d.Removed)+len(d.Added) != 0 || strings.Join(d.Kept, ",") != "typo" {
		t.Errorf("graphctl --json reload = %d, %v\n%s", code, err, out)
	}

	// SIGHUP reloads; SIGUSR1 is not a reload (and is not caught).
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitText(t, "the log", "reloaded "+in.dir+" (SIGHUP): 5 unchanged, 0 changed", in.log.String)
	final, _ := in.status()
	for _, name := range []string{"keep", "edit", "dep", "new", "typo"} {
		if pid(final, name) != pid(after, name) {
			t.Errorf("%s restarted by a reload that changed nothing", name)
		}
	}

	// A directory that cannot be read is no reason to stop anything.
	moved := in.dir + ".away"
	if err := os.Rename(in.dir, moved); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = in.ctl("reload")
	if code != 1 || !strings.HasPrefix(errOut, "graphctl: reload refused, nothing changed: open "+in.dir+": no such file or directory") {
		t.Errorf("graphctl reload without the directory = %d, %q", code, errOut)
	}
	if err := os.Rename(moved, in.dir); err != nil {
		t.Fatal(err)
	}
	final, _ = in.status()
	if c := find(final, "keep"); c.State != "ACTIVE" || c.Pid != pid(before, "keep") {
		t.Errorf("keep after a refused reload = %+v", c)
	}
}

// A component removed while it ignores SIGTERM stays listed as STOPPING
// until it is killed and reaped, and is forgotten then.
func TestReloadRemovesStubbornComponent(t *testing.T) {
	in := newInstance(t)
	decl(t, in.dir, "a.toml", "stubborn", "service", "/bin/sh",
		[]string{"-c", `trap '' TERM; echo trapped; while :; do sleep 0.05; done`}, nil, []string{"cap.x"})
	in.start()
	st := in.waitFor("stubborn", states(map[string]string{"stubborn": "ACTIVE"}))
	waitText(t, "stubborn.log", "trapped", readFile(filepath.Join(in.logDir, "stubborn.log")))
	old := find(st, "stubborn").Pid
	if err := os.Remove(filepath.Join(in.dir, "a.toml")); err != nil {
		t.Fatal(err)
	}
	st = in.waitFor("stubborn stopping", states(map[string]string{"stubborn": "STOPPING"}))
	if c := find(st, "stubborn"); c.Pid != old || c.Reason != "removed from the configuration" {
		t.Errorf("stubborn = %+v", c)
	}
	in.waitFor("stubborn forgotten", func(st control.StatusData) bool { return find(st, "stubborn").Name == "" })
	if !gone(old) {
		t.Errorf("stubborn's process %d still exists", old)
	}
	_, out, _ := in.ctl("caps")
	if !strings.Contains(out, "cap.x                          DOWN    -\n") {
		t.Errorf("caps after removal:\n%s", out)
	}
}

package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// exampleTOML is the reference's §2.5 example, verbatim.
const exampleTOML = `# /etc/graph.d/web.toml
[component]
name = "web"
binary = "/usr/sbin/webd"
args = ["--foreground", "--port", "8080"]
type = "service"

[requires]
capabilities = ["network.configured", "filesystem.var"]

[provides]
capabilities = ["http"]

[lifecycle]
handoff = "fd-passing"
readiness_file = "/run/web.ready"
readiness_timeout = 20
health_check = "/usr/libexec/graph/check-web"
health_interval = 15
health_fail_threshold = 3
health_restart_threshold = 5

[resources]
cgroup = "apps/web"
memory_max = "256M"
memory_high = "192M"
cpu_weight = 200
cpu_max = "50000 100000"
pids_max = 64

[isolation]
namespaces = "mount,uts"
hostname = "web-sandbox"
`

func TestParseReferenceExample(t *testing.T) {
	got, err := Parse("web.toml", []byte(exampleTOML))
	if err != nil {
		t.Fatalf("Parse(web.toml) error: %v", err)
	}
	want := Component{
		File:     "web.toml",
		Name:     "web",
		Binary:   "/usr/sbin/webd",
		Args:     []string{"--foreground", "--port", "8080"},
		Type:     Service,
		Provides: []string{"http"},
		Requires: []string{"network.configured", "filesystem.var"},
		Readiness: Readiness{Method: ReadyFile, File: "/run/web.ready",
			Timeout: 20 * time.Second, Interval: 5 * time.Second},
		Health: Health{Method: HealthCommand, Command: "/usr/libexec/graph/check-web", Interval: 15 * time.Second,
			Timeout: 10 * time.Second, FailThreshold: 3, RestartThreshold: 5},
		Restart: Restart{Max: 5, Window: 30 * time.Second},
		Handoff: HandoffFDPassing,
		Resources: Resources{Cgroup: "apps/web", MemoryMax: 256 << 20, MemoryHigh: 192 << 20,
			CPUWeight: 200, CPUMax: "50000 100000", PidsMax: 64},
		Isolation:  Isolation{Namespaces: []string{"mount", "uts"}, Root: "/", Hostname: "web-sandbox"},
		Checkpoint: Checkpoint{LeaveRunning: true, MaxAge: 24 * time.Hour},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Parse(web.toml) =\n%+v\nwant\n%+v", got, want)
	}
}

// Every key left out takes the default the model documents.
func TestParseDefaults(t *testing.T) {
	got, err := Parse("x.toml", []byte("[component]\nname = \"x\"\nbinary = \"/bin/x\"\n"))
	if err != nil {
		t.Fatalf("Parse error: %v", err)
	}
	want := Component{
		File:       "x.toml",
		Name:       "x",
		Binary:     "/bin/x",
		Type:       Service,
		Readiness:  Readiness{Method: ReadyNone, Timeout: 30 * time.Second, Interval: 5 * time.Second},
		Health:     Health{Method: HealthNone, Interval: 60 * time.Second, Timeout: 10 * time.Second, FailThreshold: 3, RestartThreshold: 5},
		Restart:    Restart{Max: 5, Window: 30 * time.Second},
		Handoff:    HandoffNone,
		Reload:     0,
		Resources:  Resources{Cgroup: "x"},
		Isolation:  Isolation{Root: "/"},
		Checkpoint: Checkpoint{LeaveRunning: true, MaxAge: 24 * time.Hour},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Parse(minimal) =\n%+v\nwant\n%+v", got, want)
	}
}

// Every way the structure of a file is rejected, with the exact message an
// operator sees. Values are in keys_test.go.
func TestParseRejects(t *testing.T) {
	const head = "[component]\nname = \"a\"\nbinary = \"/bin/a\"\n"
	for _, tc := range []struct {
		name, data, want string
	}{
		{"syntax", "[component]\nname = \"a\nbinary = \"/bin/a\"\n",
			"f.toml:2: strings cannot contain newlines"},
		{"unquoted string", "[component]\nname = a\n",
			"f.toml:2: expected value but found \"a\" instead"},
		{"redefined key", "[component]\nname = \"a\"\nname = \"b\"\n",
			"f.toml:3: Key 'component.name' has already been defined."},
		{"unknown key", head + "restart = \"always\"\n",
			`f.toml:4: unknown key "restart" in [component]`},
		{"unknown section", head + "\n[hotswap]\ntransfer_fds = true\n",
			"f.toml:5: unknown section [hotswap]; hot-swap is chosen with handoff in [lifecycle], its details are not configurable"},
		{"dotted unknown key in a section", head + "monitoring.enabled = true\n",
			"f.toml:4: unknown key \"monitoring\" in [component]"},
		{"unknown top-level dotted key", "monitoring.enabled = true\n" + head,
			"f.toml:1: unknown section [monitoring] (not supported)"},
		{"misplaced key", head + "[provides]\ncapabilities = [\"x\"]\nname = \"b\"\n",
			`f.toml:6: unknown key "name" in [provides]; it belongs in [component]`},
		{"key of several sections misplaced", head + "[lifecycle]\ncapabilities = [\"x\"]\n",
			`f.toml:5: unknown key "capabilities" in [lifecycle]; it belongs in [provides], [requires] or [optional]`},
		{"key outside sections", "name = \"a\"\n" + head,
			`f.toml:1: key "name" is outside any section; it belongs in [component]`},
		{"unknown key outside sections", "# comment\nbogus = 1\n" + head,
			`f.toml:2: unknown key "bogus" outside any section`},
		{"upper-case key", "[component]\nName = \"a\"\nbinary = \"/bin/a\"\n",
			`f.toml:2: unknown key "Name" in [component]; keys are lower case: "name"`},
		{"unknown key in inline table", "component = {name = \"a\", binary = \"/bin/a\", extra = 1}\n",
			`f.toml:1: unknown key "extra" in [component]`},
		{"unknown key in multi-line inline table", "component = {name = \"a\",\n binary = \"/bin/a\",\n extra = 1}\n",
			`f.toml:3: unknown key "extra" in [component]`},
		{"unknown key after a multi-line array", head + "args = [\n  \"x = 1\",\n  \"[provides]\",\n]\nextra = 1\n",
			`f.toml:8: unknown key "extra" in [component]`},
		{"section not a table", "component = \"a\"\n",
			"f.toml:1: [component] must be a single table, not a string"},
		{"array of tables", "[[component]]\nname = \"a\"\n",
			"f.toml:1: [component] must be a single table, not an array of tables"},
		{"sub-table of a key", head + "[lifecycle.health_check]\ncommand = \"/bin/true\"\n",
			"f.toml:4: lifecycle.health_check: must be a string, not a table"},
		{"dotted key below a key", head + "[lifecycle]\nhealth_check.command = \"/bin/true\"\n",
			"f.toml:5: lifecycle.health_check: must be a string, not a table"},
		{"name not a string", "[component]\nname = 5\nbinary = \"/bin/a\"\n",
			"f.toml:2: component.name: must be a string, not an integer"},
		{"args not strings", head + "args = [\"-v\",\n  3]\n",
			"f.toml:4: component.args: element 2 must be a string, not an integer"},
		{"args of tables", head + "args = [{a = 1}]\n",
			"f.toml:4: component.args: element 1 must be a string, not a table"},
		{"NUL in a string", head + "args = [\"a\\u0000b\"]\n",
			"f.toml:4: component.args: element 1 must not contain a NUL character"},
		{"capabilities not an array", "[provides]\ncapabilities = \"x\"\n" + head,
			"f.toml:2: provides.capabilities: must be an array of strings, not a string"},
		{"no component section", "[provides]\ncapabilities = [\"x\"]\n",
			"f.toml: [component] has no name"},
		{"no name", "\n[component]\nbinary = \"/bin/a\"\n",
			"f.toml:2: [component] has no name"},
		{"no name, dotted keys", "component.binary = \"/bin/a\"\n",
			"f.toml:1: [component] has no name"},
		{"bad name", "[component]\nname = \"../etc\"\nbinary = \"/bin/a\"\n",
			`f.toml:2: component.name: "../etc" is not a valid name: use letters, digits, '.', '_' and '-', starting with a letter, digit or '_'`},
		{"hidden name", "[component]\nname = \".a\"\nbinary = \"/bin/a\"\n",
			`f.toml:2: component.name: ".a" is not a valid name: use letters, digits, '.', '_' and '-', starting with a letter, digit or '_'`},
		{"option-like name", "[component]\nname = \"-v\"\nbinary = \"/bin/a\"\n",
			`f.toml:2: component.name: "-v" is not a valid name: use letters, digits, '.', '_' and '-', starting with a letter, digit or '_'`},
		{"long name", "[component]\nname = \"" + strings.Repeat("n", 252) + "\"\nbinary = \"/bin/a\"\n",
			"f.toml:2: component.name: is 252 bytes long; at most 251 fit a log file name"},
		{"no binary", "[component]\nname = \"a\"\n",
			`f.toml:1: component "a" has no binary`},
		{"relative binary", "[component]\nname = \"a\"\nbinary = \"bin/a\"\n",
			`f.toml:3: component.binary: must be an absolute path, not "bin/a"`},
		{"bad type", head + "type = \"daemon\"\n",
			`f.toml:4: component.type: must be "service" or "oneshot", not "daemon"`},
		{"empty capability", head + "[requires]\ncapabilities = [\"\"]\n",
			`f.toml:5: requires.capabilities: "" is not a capability name: it must be non-empty and contain no whitespace`},
		{"capability with space", head + "[provides]\ncapabilities = [\"a b\"]\n",
			`f.toml:5: provides.capabilities: "a b" is not a capability name: it must be non-empty and contain no whitespace`},
		{"capability twice", head + "[provides]\ncapabilities = [\"x\", \"x\"]\n",
			`f.toml:5: provides.capabilities: "x" is listed twice`},
		{"first problem in file order", head + "type = \"daemon\"\nbogus = 1\n[lifecycle]\nreadiness_timeout = 0\n",
			`f.toml:4: component.type: must be "service" or "oneshot", not "daemon"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("f.toml", []byte(tc.data))
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, nil; want error %q", tc.data, c, tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("Parse(%q) error = %q; want %q", tc.data, err.Error(), tc.want)
			}
		})
	}
}

func TestSame(t *testing.T) {
	parse := func(file, data string) Component {
		t.Helper()
		c, err := Parse(file, []byte(data))
		if err != nil {
			t.Fatalf("Parse(%s): %v", file, err)
		}
		return c
	}
	base := parse("a.toml", exampleTOML)
	for _, tc := range []struct {
		name, file, data string
		same             bool
	}{
		{"same content, other file", "b.toml", exampleTOML, true},
		{"comments, layout and spelling", "c.toml", strings.NewReplacer(
			"# /etc/graph.d/web.toml", "# moved and commented",
			`args = ["--foreground", "--port", "8080"]`, "args = [\n  \"--foreground\",\n  \"--port\", \"8080\", # port\n]",
			`type = "service"`, "",
			"readiness_timeout = 20", `readiness_timeout = "20s"`,
			`memory_max = "256M"`, "memory_max = 268435456",
			`namespaces = "mount,uts"`, `namespaces = ["uts", "mnt"]`,
			`cpu_max = "50000 100000"`, `cpu_max = " 50000  100000 "`,
		).Replace(exampleTOML), true},
		{"a changed argument", "a.toml", strings.Replace(exampleTOML, `"8080"`, `"8081"`, 1), false},
		{"a changed readiness timeout", "a.toml", strings.Replace(exampleTOML, "readiness_timeout = 20", "readiness_timeout = 21", 1), false},
		{"reordered arguments", "a.toml", strings.Replace(exampleTOML, `"--foreground", "--port", "8080"`, `"--port", "8080", "--foreground"`, 1), false},
		{"a changed limit", "a.toml", strings.Replace(exampleTOML, "pids_max = 64", "pids_max = 65", 1), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := parse(tc.file, tc.data)
			if got := Same(base, c); got != tc.same {
				t.Errorf("Same(example, %s) = %v; want %v\n%+v\n%+v", tc.name, got, tc.same, base, c)
			}
		})
	}
}

func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func decl(name string) string {
	return "[component]\nname = \"" + name + "\"\nbinary = \"/bin/" + name + "\"\n"
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"20-b.toml":       decl("b"),
		"10-a.toml":       decl("a"),
		"30-bad.toml":     decl("c") + "bogus = 1\n",
		"40-dup.toml":     "# same name as 20-b\n" + decl("b"),
		"50-kernel.toml":  decl("kernel"),
		"60-c.toml":       decl("c"),
		".hidden.toml":    decl("hidden"),
		"notes.txt":       decl("txt"),
		"70-d.toml.dpkg~": decl("backup"),
	})
	if err := os.Mkdir(filepath.Join(dir, "sub.toml"), 0o755); err != nil {
		t.Fatal(err)
	}

	comps, errs := Load(dir)
	var names []string
	for _, c := range comps {
		names = append(names, c.Name)
	}
	if want := []string{"a", "b", "c"}; !reflect.DeepEqual(names, want) {
		t.Errorf("Load loaded %q; want %q (sorted by file name, bad files left out)", names, want)
	}
	var msgs []string
	for _, err := range errs {
		msgs = append(msgs, strings.TrimPrefix(err.Error(), dir+"/"))
	}
	want := []string{
		`30-bad.toml:4: unknown key "bogus" in [component]`,
		`40-dup.toml:3: duplicate component name "b" (already declared by ` + filepath.Join(dir, "20-b.toml") + ")",
		`50-kernel.toml:2: duplicate component name "kernel" (already declared by the built-in kernel pseudo-component)`,
	}
	if !reflect.DeepEqual(msgs, want) {
		t.Errorf("Load errors =\n%s\nwant\n%s", strings.Join(msgs, "\n"), strings.Join(want, "\n"))
	}
	if comps[0].File != filepath.Join(dir, "10-a.toml") {
		t.Errorf("Load: a.File = %q; want the path it was read from", comps[0].File)
	}
}

func TestLoadMissingDir(t *testing.T) {
	comps, errs := Load(filepath.Join(t.TempDir(), "nope"))
	if len(comps) != 0 || len(errs) != 1 || !strings.Contains(errs[0].Error(), "no such file or directory") {
		t.Errorf("Load(missing) = %v, %v; want no components and one not-found error", comps, errs)
	}
}

func TestLoadUnreadableFile(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads files regardless of their mode")
	}
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.toml": decl("a")})
	if err := os.Chmod(filepath.Join(dir, "a.toml"), 0); err != nil {
		t.Fatal(err)
	}
	_, errs := Load(dir)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "permission denied") {
		t.Errorf("Load(unreadable) errors = %v; want permission denied", errs)
	}
}

// The signal table must agree with the kernel's numbering it stands for.
func TestSignalNames(t *testing.T) {
	for _, s := range signals {
		if got := unix.SignalName(s.sig); got != "SIG"+s.name {
			t.Errorf("signals: %q is signal %d, which is %s", s.name, int(s.sig), got)
		}
	}
}

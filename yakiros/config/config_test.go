package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const webTOML = `# a full declaration
[component]
name = "web"
binary = "/usr/sbin/webd"
args = ["--port", "8080"]   # inline comments are fine
type = "service"

[requires]
capabilities = [
  "network.configured",
  "filesystem.var",
]

[provides]
capabilities = ["http"]
`

func TestParseFull(t *testing.T) {
	got, err := Parse("web.toml", []byte(webTOML))
	if err != nil {
		t.Fatalf("Parse(web.toml) error: %v", err)
	}
	want := Component{
		File:     "web.toml",
		Name:     "web",
		Binary:   "/usr/sbin/webd",
		Args:     []string{"--port", "8080"},
		Type:     Service,
		Provides: []string{"http"},
		Requires: []string{"network.configured", "filesystem.var"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Parse(web.toml) = %+v; want %+v", got, want)
	}
}

func TestParseDefaults(t *testing.T) {
	got, err := Parse("x.toml", []byte("[component]\nname = \"x\"\nbinary = \"/bin/x\"\n"))
	if err != nil {
		t.Fatalf("Parse error: %v", err)
	}
	if got.Type != Service || got.Args != nil || got.Provides != nil || got.Requires != nil {
		t.Errorf("Parse(minimal) = %+v; want type service and no args/capabilities", got)
	}
	got, err = Parse("o.toml", []byte("[component]\nname = \"o\"\nbinary = \"/bin/o\"\ntype = \"oneshot\"\n"))
	if err != nil || got.Type != Oneshot {
		t.Errorf("Parse(oneshot) = %+v, %v; want type oneshot", got, err)
	}
}

// Every way a file is rejected, with the exact message an operator sees.
func TestParseRejects(t *testing.T) {
	const head = "[component]\nname = \"a\"\nbinary = \"/bin/a\"\n"
	for _, tc := range []struct {
		name, data, want string
	}{
		{"syntax", "[component]\nname = \"a\nbinary = \"/bin/a\"\n",
			"f.toml:2: strings cannot contain newlines"},
		{"redefined key", "[component]\nname = \"a\"\nname = \"b\"\n",
			"f.toml:3: Key 'component.name' has already been defined."},
		{"unknown key", head + "handoff = \"fd-passing\"\n",
			`f.toml:4: unknown key "handoff" in [component]`},
		{"unknown section", head + "\n[lifecycle]\nhealth_check = \"/bin/true\"\n",
			"f.toml:5: unknown section [lifecycle]"},
		{"misplaced key", head + "[provides]\ncapabilities = [\"x\"]\nname = \"b\"\n",
			`f.toml:6: unknown key "name" in [provides]`},
		{"key outside sections", "name = \"a\"\n" + head,
			`f.toml:1: key "name" is outside any section; it belongs in [component], [provides] or [requires]`},
		{"upper-case key", "[component]\nName = \"a\"\nbinary = \"/bin/a\"\n",
			`f.toml:2: unknown key "Name" in [component]`},
		{"unknown key in inline table", "component = {name = \"a\", binary = \"/bin/a\", extra = 1}\n",
			`f.toml:1: unknown key "extra" in [component]`},
		{"section not a table", "component = \"a\"\n",
			"f.toml:1: [component] must be a single table, not a string"},
		{"array of tables", "[[component]]\nname = \"a\"\n",
			"f.toml:1: [component] must be a single table, not an array of tables"},
		{"name not a string", "[component]\nname = 5\nbinary = \"/bin/a\"\n",
			"f.toml:2: component.name: must be a string, not an integer"},
		{"args not strings", head + "args = [\"-v\",\n  3]\n",
			"f.toml:4: component.args: element 2 must be a string, not an integer"},
		{"capabilities not an array", "[provides]\ncapabilities = \"x\"\n" + head,
			"f.toml:2: provides.capabilities: must be an array of strings, not a string"},
		{"no component section", "[provides]\ncapabilities = [\"x\"]\n",
			"f.toml: [component] has no name"},
		{"no name", "[component]\nbinary = \"/bin/a\"\n",
			"f.toml:1: [component] has no name"},
		{"bad name", "[component]\nname = \"../etc\"\nbinary = \"/bin/a\"\n",
			`f.toml:2: component name "../etc": use letters, digits, '.', '_' and '-', not starting with '.'`},
		{"no binary", "[component]\nname = \"a\"\n",
			`f.toml:1: component "a" has no binary`},
		{"relative binary", "[component]\nname = \"a\"\nbinary = \"bin/a\"\n",
			`f.toml:3: binary "bin/a" must be an absolute path`},
		{"bad type", head + "type = \"daemon\"\n",
			`f.toml:4: type "daemon" must be "service" or "oneshot"`},
		{"empty capability", head + "[requires]\ncapabilities = [\"\"]\n",
			`f.toml:5: capability name "" in [requires] must be non-empty and contain no whitespace`},
		{"capability with space", head + "[provides]\ncapabilities = [\"a b\"]\n",
			`f.toml:5: capability name "a b" in [provides] must be non-empty and contain no whitespace`},
		{"capability twice", head + "[provides]\ncapabilities = [\"x\", \"x\"]\n",
			`f.toml:5: capability "x" listed twice in [provides]`},
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

func writeFiles(t *testing.T, dir string, files map[string]string) {
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

// Package config loads component declarations: one TOML file per component in
// a directory (normally /etc/graph.d), read in sorted order. A file that is not
// valid is rejected with a "file:line: message" error and the others still
// load, so one typo never keeps the rest of the system down.
package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"

	"yakimg/yakiros/capability"
)

// Type says how a component's process is treated when it exits.
type Type string

// Component types.
const (
	Service Type = "service" // runs until stopped; its exit is a failure
	Oneshot Type = "oneshot" // runs to completion; exit 0 provides its capabilities
)

// Component is one validated declaration. Durations and sizes are
// normalised (defaults applied), so two declarations that mean the same
// compare equal; File is where it came from and takes no part in that.
type Component struct {
	File     string // the file it came from
	Name     string
	Binary   string // absolute path, executed without PATH lookup
	Args     []string
	Type     Type
	Provides []string
	Requires []string
	Optional []string // started after, if present; never waited for

	Readiness  Readiness
	Health     Health
	Restart    Restart
	Handoff    string         // "none", "fd-passing", "state-file", "checkpoint"
	Reload     syscall.Signal // reload_signal; 0 = none
	Resources  Resources
	Isolation  Isolation
	Checkpoint Checkpoint
}

// ReadinessMethod says how a started service tells that it is ready.
type ReadinessMethod string

// Readiness methods.
const (
	ReadyNone    ReadinessMethod = "none"    // ready once the binary runs
	ReadyFile    ReadinessMethod = "file"    // ready when File exists
	ReadyCommand ReadinessMethod = "command" // ready when Command exits 0
	ReadyNotify  ReadinessMethod = "notify"  // ready on READY=1 at $NOTIFY_SOCKET
	ReadySignal  ReadinessMethod = "signal"  // ready on Signal from the service
)

// Readiness is [lifecycle] readiness_*.
type Readiness struct {
	Method   ReadinessMethod
	File     string
	Command  string         // run with /bin/sh -c
	Signal   syscall.Signal // for ReadySignal
	Timeout  time.Duration  // default 30s
	Interval time.Duration  // between command checks; default 5s
}

// Health is [lifecycle] health_*.
type Health struct {
	Command          string        // health_check, run with /bin/sh -c; "" = no checks
	Interval         time.Duration // default 60s
	Timeout          time.Duration // default 10s
	FailThreshold    int           // consecutive failures ACTIVE → DEGRADED; default 3
	RestartThreshold int           // consecutive failures DEGRADED → FAILED; default 5
}

// Restart is the back-off policy: at most Max starts within Window.
type Restart struct {
	Max    int           // restart_max; default 5
	Window time.Duration // restart_window; default 30s
}

// Resources is [resources]; zero values mean "not set".
type Resources struct {
	Cgroup     string // below /sys/fs/cgroup/graph; default the component name
	MemoryMax  int64  // bytes
	MemoryHigh int64  // bytes
	CPUWeight  int    // 1..10000
	CPUMax     string // "max 100000" or "50000 100000"
	IOWeight   int    // 1..10000
	PidsMax    int
}

// Isolation is [isolation].
type Isolation struct {
	Namespaces []string // "mount", "pid", "net", "uts", "ipc", "user"; sorted, no duplicates
	Root       string   // default "/"
	Hostname   string
	PrivateTmp bool
}

// Checkpoint is [checkpoint].
type Checkpoint struct {
	Enabled          bool
	PreserveFDs      []string
	LeaveRunning     bool // default true
	MemoryEstimateMB int
	MaxAge           time.Duration // default 24h
}

// Same reports whether a and b declare the same component (File aside): a
// reload leaves such a component running untouched.
func Same(a, b Component) bool {
	a.File, b.File = "", ""
	return reflect.DeepEqual(a, b)
}

// FileError is a rejected file. Line is 0 when no line can be named.
type FileError struct {
	File string
	Line int
	Msg  string
}

func (e *FileError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Load reads every *.toml file in dir (hidden files and subdirectories are
// skipped) in sorted order. It returns the valid components and one error per
// rejected file; a later file declaring an already used name is rejected.
func Load(dir string) ([]Component, []error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, []error{fmt.Errorf("read component directory: %w", err)}
	}
	var (
		comps []Component
		errs  []error
		// The kernel pseudo-component is built in, so its name is taken.
		owner = map[string]string{capability.Kernel: "the built-in kernel pseudo-component"}
	)
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || filepath.Ext(name) != ".toml" || e.IsDir() {
			continue
		}
		path := filepath.Join(dir, name)
		data, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, &FileError{File: path, Msg: err.Error()})
			continue
		}
		c, err := Parse(path, data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if prev, taken := owner[c.Name]; taken {
			errs = append(errs, &FileError{File: path, Line: keyLine(data, toml.Key{"component", "name"}),
				Msg: fmt.Sprintf("duplicate component name %q (already declared by %s)", c.Name, prev)})
			continue
		}
		owner[c.Name] = path
		comps = append(comps, c)
	}
	return comps, errs
}

// Parse validates one declaration; file names it in errors.
func Parse(file string, data []byte) (Component, error) {
	var raw struct {
		Component struct {
			Name   str     `toml:"name"`
			Binary str     `toml:"binary"`
			Args   strList `toml:"args"`
			Type   str     `toml:"type"`
		} `toml:"component"`
		Provides struct {
			Capabilities strList `toml:"capabilities"`
		} `toml:"provides"`
		Requires struct {
			Capabilities strList `toml:"capabilities"`
		} `toml:"requires"`
	}
	fail := func(key toml.Key, format string, args ...any) (Component, error) {
		line := 0
		if key != nil {
			line = keyLine(data, key)
		}
		return Component{}, &FileError{File: file, Line: line, Msg: fmt.Sprintf(format, args...)}
	}

	md, err := toml.Decode(string(data), &raw)
	for _, section := range []string{"component", "provides", "requires"} {
		if t := md.Type(section); t != "" && t != "Hash" {
			return fail(toml.Key{section}, "[%s] must be a single table, not %s", section, metaType(t))
		}
	}
	if err != nil {
		var pe toml.ParseError
		if !errors.As(err, &pe) {
			return fail(nil, "%v", err)
		}
		// Syntax errors come before any key is known; value errors (from
		// str and strList) carry the key they are about.
		msg := pe.Message
		if len(md.Keys()) > 0 && pe.LastKey != "" {
			msg = pe.LastKey + ": " + msg
		}
		return Component{}, &FileError{File: file, Line: pe.Position.Line, Msg: msg}
	}

	undecoded := map[string]bool{}
	for _, k := range md.Undecoded() {
		undecoded[k.String()] = true
	}
	for _, k := range md.Keys() {
		// The decoder matches field names case-insensitively; keys are not.
		if !undecoded[k.String()] && k.String() == strings.ToLower(k.String()) {
			continue
		}
		switch {
		case len(k) > 1:
			return fail(k, "unknown key %q in [%s]", k[len(k)-1], strings.Join(k[:len(k)-1], "."))
		case md.Type(k...) == "Hash" || md.Type(k...) == "ArrayHash":
			return fail(k, "unknown section [%s]", k[0])
		default:
			return fail(k, "key %q is outside any section; it belongs in [component], [provides] or [requires]", k[0])
		}
	}

	c := Component{
		File:     file,
		Name:     string(raw.Component.Name),
		Binary:   string(raw.Component.Binary),
		Args:     raw.Component.Args,
		Type:     Type(raw.Component.Type),
		Provides: raw.Provides.Capabilities,
		Requires: raw.Requires.Capabilities,
	}
	switch {
	case !md.IsDefined("component", "name"):
		return fail(toml.Key{"component"}, "[component] has no name")
	case !validName.MatchString(c.Name):
		return fail(toml.Key{"component", "name"}, "component name %q: use letters, digits, '.', '_' and '-', not starting with '.'", c.Name)
	case !md.IsDefined("component", "binary"):
		return fail(toml.Key{"component"}, "component %q has no binary", c.Name)
	case !filepath.IsAbs(c.Binary):
		return fail(toml.Key{"component", "binary"}, "binary %q must be an absolute path", c.Binary)
	}
	switch c.Type {
	case "":
		c.Type = Service
	case Service, Oneshot:
	default:
		return fail(toml.Key{"component", "type"}, "type %q must be \"service\" or \"oneshot\"", c.Type)
	}
	for _, section := range []string{"provides", "requires"} {
		caps := c.Provides
		if section == "requires" {
			caps = c.Requires
		}
		seen := map[string]bool{}
		for _, name := range caps {
			key := toml.Key{section, "capabilities"}
			if name == "" || strings.ContainsAny(name, " \t\r\n") {
				return fail(key, "capability name %q in [%s] must be non-empty and contain no whitespace", name, section)
			}
			if seen[name] {
				return fail(key, "capability %q listed twice in [%s]", name, section)
			}
			seen[name] = true
		}
	}
	return c, nil
}

// validName keeps names usable as file names (/run/graph/<name>.log).
var validName = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]*$`)

// str is a TOML string; anything else is rejected with a readable message.
type str string

func (s *str) UnmarshalTOML(v any) error {
	t, ok := v.(string)
	if !ok {
		return fmt.Errorf("must be a string, not %s", tomlType(v))
	}
	*s = str(t)
	return nil
}

// strList is a TOML array of strings.
type strList []string

func (l *strList) UnmarshalTOML(v any) error {
	items, ok := v.([]any)
	if !ok {
		return fmt.Errorf("must be an array of strings, not %s", tomlType(v))
	}
	out := make([]string, 0, len(items))
	for i, item := range items {
		t, ok := item.(string)
		if !ok {
			return fmt.Errorf("element %d must be a string, not %s", i+1, tomlType(item))
		}
		out = append(out, t)
	}
	*l = out
	return nil
}

// tomlType names a decoded TOML value's type the way the TOML spec does.
func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any, []map[string]any:
		return "a table"
	default:
		return "a date/time"
	}
}

// metaType names a toml.MetaData type string for messages.
func metaType(t string) string {
	switch t {
	case "ArrayHash":
		return "an array of tables"
	case "Integer", "Array":
		return "an " + strings.ToLower(t)
	default:
		return "a " + strings.ToLower(t)
	}
}

// keyLine finds the line on which key is set (or its table header), for
// messages about values the TOML decoder accepted. It understands the plain
// layouts people write ("[table]", "key = value", dotted keys); a key it
// cannot find (say, inside an inline table) is looked up by its parent, and 0
// means no line could be named.
func keyLine(data []byte, key toml.Key) int {
	for ; len(key) > 0; key = key[:len(key)-1] {
		if n := findKey(data, key); n > 0 {
			return n
		}
	}
	return 0
}

func findKey(data []byte, key toml.Key) int {
	var table []string
	for i, line := range strings.Split(string(data), "\n") {
		s := strings.TrimSpace(line)
		var full []string
		switch {
		case s == "" || s[0] == '#':
			continue
		case strings.HasPrefix(s, "[["):
			end := strings.Index(s, "]]")
			if end < 0 {
				continue
			}
			table = splitKey(s[2:end])
			full = table
		case s[0] == '[':
			end := strings.IndexByte(s, ']')
			if end < 0 {
				continue
			}
			table = splitKey(s[1:end])
			full = table
		default:
			eq := strings.IndexByte(s, '=')
			if eq < 0 {
				continue
			}
			full = append(append([]string(nil), table...), splitKey(s[:eq])...)
		}
		if len(full) >= len(key) && slices.Equal(full[:len(key)], []string(key)) {
			return i + 1
		}
	}
	return 0
}

func splitKey(s string) []string {
	parts := strings.Split(s, ".")
	for i, p := range parts {
		parts[i] = strings.Trim(strings.TrimSpace(p), `"'`)
	}
	return parts
}

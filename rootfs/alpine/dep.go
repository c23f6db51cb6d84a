package alpine

import (
	"errors"
	"fmt"
	"strings"
)

// dep is one entry of a D: or i: list, "[!]name[op version]": "busybox",
// "musl>=1.2", "so:libc.musl-x86_64.so.1", "cmd:sh", "/bin/sh", "!foo<2".
type dep struct {
	name     string
	op       string // "" (any version) or one of ops
	version  string
	conflict bool // "!name": must not be installed
}

// ops are the version operators apk writes into indexes; "~" matches a
// version prefix ("~1.2" accepts 1.2.5 and 1.2-r3).
var ops = []string{"<=", ">=", "<~", ">~", "<", ">", "=", "~"}

func parseDep(s string) (dep, error) {
	var d dep
	if rest, ok := strings.CutPrefix(s, "!"); ok {
		d.conflict, s = true, rest
	}
	name, ver, op := s, "", ""
	if i := strings.IndexAny(s, "<>=~"); i >= 0 {
		name, ver = s[:i], s[i:]
		for _, o := range ops {
			if strings.HasPrefix(ver, o) {
				op, ver = o, ver[len(o):]
				break
			}
		}
		if op == "" || ver == "" || strings.ContainsAny(ver[:1], "<>=~") {
			return dep{}, fmt.Errorf("dependency %q: bad version operator", s)
		}
		if err := CheckVersion(ver); err != nil {
			return dep{}, fmt.Errorf("dependency %q: %w", s, err)
		}
	}
	if err := checkName(name); err != nil {
		return dep{}, fmt.Errorf("dependency %q: %w", s, err)
	}
	d.name, d.op, d.version = name, op, ver
	return d, nil
}

// parseProvide reads a p: entry: "name" or "name=version".
func parseProvide(s string) (name, version string, err error) {
	name, version, versioned := strings.Cut(s, "=")
	if err := checkName(name); err != nil {
		return "", "", fmt.Errorf("provides %q: %w", s, err)
	}
	if versioned {
		if err := CheckVersion(version); err != nil {
			return "", "", fmt.Errorf("provides %q: %w", s, err)
		}
	}
	return name, version, nil
}

func checkName(name string) error {
	if name == "" {
		return errors.New("empty name")
	}
	if strings.ContainsAny(name, " \t<>=~!") {
		return fmt.Errorf("name %q contains a space or an operator character (<>=~!)", name)
	}
	return nil
}

func (d dep) String() string {
	s := d.name + d.op + d.version
	if d.conflict {
		return "!" + s
	}
	return s
}

// matches reports whether version v satisfies d's version constraint
// (ignoring the conflict mark).
func (d dep) matches(v string) bool {
	if d.op == "" {
		return true
	}
	c := compareVersions(v, d.version, strings.Contains(d.op, "~"))
	switch {
	case c < 0:
		return strings.Contains(d.op, "<")
	case c > 0:
		return strings.Contains(d.op, ">")
	}
	return strings.ContainsAny(d.op, "=~")
}

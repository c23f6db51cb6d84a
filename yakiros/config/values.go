package config

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// str is a TOML string. NUL is refused: no path, command or argument can
// carry it into the kernel.
func str(v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("must be a string, not %s", tomlType(v))
	}
	if strings.ContainsRune(s, 0) {
		return "", errors.New("must not contain a NUL character")
	}
	return s, nil
}

// nonEmpty is a string that says something; leaving the key out is how to
// say nothing.
func nonEmpty(v any) (string, error) {
	s, err := str(v)
	if err == nil && strings.TrimSpace(s) == "" {
		return "", errors.New("must not be empty (leave the key out instead)")
	}
	return s, err
}

func absPath(v any) (string, error) {
	s, err := str(v)
	if err == nil && !filepath.IsAbs(s) {
		return "", fmt.Errorf("must be an absolute path, not %q", s)
	}
	return s, err
}

// oneOf is a string from a fixed list.
func oneOf(v any, allowed ...string) (string, error) {
	s, err := str(v)
	if err == nil && !slices.Contains(allowed, s) {
		quoted := make([]string, len(allowed))
		for i, a := range allowed {
			quoted[i] = strconv.Quote(a)
		}
		return "", fmt.Errorf("must be %s, not %q", joinOr(quoted), s)
	}
	return s, err
}

func boolean(v any) (bool, error) {
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("must be true or false, not %s", tomlType(v))
	}
	return b, nil
}

// strList is an array of strings; an empty one is nil, so that leaving the
// key out and writing [] compare equal.
func strList(v any) ([]string, error) {
	items, ok := v.([]any)
	if tables, isTables := v.([]map[string]any); isTables && len(tables) > 0 {
		return nil, errors.New("element 1 must be a string, not a table")
	}
	if !ok {
		return nil, fmt.Errorf("must be an array of strings, not %s", tomlType(v))
	}
	var out []string
	for i, item := range items {
		s, err := str(item)
		if err != nil {
			return nil, fmt.Errorf("element %d %w", i+1, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// capabilities is a list of distinct capability names.
func capabilities(v any) ([]string, error) {
	names, err := strList(v)
	if err != nil {
		return nil, err
	}
	for i, name := range names {
		if name == "" || strings.ContainsFunc(name, isSpace) {
			return nil, fmt.Errorf("%q is not a capability name: it must be non-empty and contain no whitespace", name)
		}
		if slices.Contains(names[:i], name) {
			return nil, fmt.Errorf("%q is listed twice", name)
		}
	}
	return names, nil
}

func isSpace(r rune) bool { return strings.ContainsRune(" \t\r\n\v\f", r) }

// tokens is a list written as an array of strings or, as in the reference,
// one comma-separated string ("mount,uts"; blanks around items are ignored).
func tokens(v any) ([]string, error) {
	s, ok := v.(string)
	if !ok {
		if _, ok := v.([]any); !ok {
			return nil, fmt.Errorf("must be an array of strings or a comma-separated string, not %s", tomlType(v))
		}
		return strList(v)
	}
	if _, err := str(v); err != nil {
		return nil, err
	}
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	items := strings.Split(s, ",")
	for i, item := range items {
		if items[i] = strings.TrimSpace(item); items[i] == "" {
			return nil, fmt.Errorf("has an empty item in %q", s)
		}
	}
	return items, nil
}

// tokenSet is a tokens list of distinct words, sorted: order carries no
// meaning, so it must not make two declarations differ.
func tokenSet(v any) ([]string, error) {
	items, err := tokens(v)
	if err != nil {
		return nil, err
	}
	for i, item := range items {
		if item == "" || strings.ContainsFunc(item, isSpace) || strings.Contains(item, ",") {
			return nil, fmt.Errorf("%q must be non-empty and contain no whitespace or comma", item)
		}
		if slices.Contains(items[:i], item) {
			return nil, fmt.Errorf("%q is listed twice", item)
		}
	}
	slices.Sort(items)
	return items, nil
}

// namespaceNames maps each accepted spelling to the model's name.
var namespaceNames = map[string]string{
	"mount": "mount", "mnt": "mount", "pid": "pid", "net": "net", "uts": "uts", "ipc": "ipc", "user": "user",
}

func namespaces(v any) ([]string, error) {
	items, err := tokens(v)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, item := range items {
		ns, ok := namespaceNames[item]
		if !ok {
			return nil, fmt.Errorf("unknown namespace %q; known are mount (or mnt), pid, net, uts, ipc and user", item)
		}
		if slices.Contains(out, ns) {
			return nil, fmt.Errorf("namespace %q is listed twice", ns)
		}
		out = append(out, ns)
	}
	slices.Sort(out)
	return out, nil
}

// duration is an integer count of unit (seconds, or hours for max_age) or a
// string in Go's duration syntax ("500ms", "2s", "1m30s", "1.5h"). Below a
// millisecond is surely a slip, and would make a timer spin.
func duration(v any, unit time.Duration) (time.Duration, error) {
	units := "seconds"
	if unit == time.Hour {
		units = "hours"
	}
	var d time.Duration
	switch t := v.(type) {
	case int64:
		if t < 1 {
			return 0, fmt.Errorf("must be at least 1 (%s), not %d", units, t)
		}
		if t > int64(math.MaxInt64/unit) {
			return 0, fmt.Errorf("%d %s is too long", t, units)
		}
		d = time.Duration(t) * unit
	case string:
		var err error
		if d, err = time.ParseDuration(t); err != nil {
			return 0, fmt.Errorf("must be a number of %s or a duration like \"500ms\", \"2s\" or \"1m30s\", not %q", units, t)
		}
		if d < time.Millisecond {
			return 0, fmt.Errorf("must be at least 1ms, not %q", t)
		}
	default:
		return 0, fmt.Errorf("must be a whole number of %s or a duration string like \"1.5s\", not %s", units, tomlType(v))
	}
	return d, nil
}

var (
	sizePattern       = regexp.MustCompile(`^([0-9]+)([KkMmGg]?)$`)
	sizeSuffixB       = regexp.MustCompile(`^([0-9]+[KkMmGg])(i?[Bb])$`)
	sizeShift         = map[string]uint{"": 0, "k": 10, "m": 20, "g": 30}
	minSize     int64 = 4096 // one page: anything less kills the service at once
)

// size is a byte count: an integer, or a string of digits with an optional
// K, M or G (powers of 1024), or "max" for no limit (0).
func size(v any) (int64, error) {
	var n int64
	switch t := v.(type) {
	case int64:
		n = t
	case string:
		if t == "max" {
			return 0, nil
		}
		m := sizePattern.FindStringSubmatch(t)
		if m == nil {
			if b := sizeSuffixB.FindStringSubmatch(t); b != nil {
				// "MB" means 10⁶ to many people and 2²⁰ to the reference.
				return 0, fmt.Errorf("%q: write %q for binary multiples; a trailing %q is not accepted", t, b[1], b[2])
			}
			return 0, fmt.Errorf("must be a number of bytes, a size like \"50M\" (K, M, G are 1024, 1024², 1024³) or \"max\", not %q", t)
		}
		digits, err := strconv.ParseInt(m[1], 10, 64)
		shift := sizeShift[strings.ToLower(m[2])]
		if err != nil || digits > math.MaxInt64>>shift {
			return 0, fmt.Errorf("%q is too large", t)
		}
		n = digits << shift
	default:
		return 0, fmt.Errorf("must be a number of bytes or a size string like \"50M\", not %s", tomlType(v))
	}
	if n < minSize {
		shown := fmt.Sprint(v)
		if s, ok := v.(string); ok {
			shown = strconv.Quote(s)
		}
		return 0, fmt.Errorf("must be at least %d bytes (one page), not %s; \"max\" means no limit", minSize, shown)
	}
	return n, nil
}

// weight is a cgroup v2 weight (cpu.weight, io.weight).
func weight(v any) (int, error) {
	n, ok := v.(int64)
	if !ok {
		return 0, fmt.Errorf("must be an integer, not %s", tomlType(v))
	}
	if n < 1 || n > 10000 {
		return 0, fmt.Errorf("must be between 1 and 10000, not %d", n)
	}
	return int(n), nil
}

// Kernel limits of cpu.max, in microseconds.
const (
	minCPUQuota      = 1000
	minCPUPeriod     = 1000
	maxCPUPeriod     = 1000000
	defaultCPUPeriod = 100000
)

// cpuMax is cpu.max: "QUOTA PERIOD" or "QUOTA" in microseconds, QUOTA "max"
// for no limit. It is normalised to both fields (the period defaults to the
// kernel's 100000) so equal limits compare equal.
func cpuMax(v any) (string, error) {
	s, err := str(v)
	if err != nil {
		return "", err
	}
	f := strings.Fields(s)
	if len(f) == 1 {
		f = append(f, strconv.Itoa(defaultCPUPeriod))
	}
	if len(f) != 2 {
		return "", fmt.Errorf("must be \"QUOTA PERIOD\" in microseconds, like \"50000 100000\" or \"max 100000\", not %q", s)
	}
	if f[0] != "max" {
		if q, err := strconv.ParseInt(f[0], 10, 64); err != nil || q < minCPUQuota {
			return "", fmt.Errorf("quota must be \"max\" or a number of microseconds of at least %d, not %q", minCPUQuota, f[0])
		}
	}
	if p, err := strconv.ParseInt(f[1], 10, 64); err != nil || p < minCPUPeriod || p > maxCPUPeriod {
		return "", fmt.Errorf("period must be between %d and %d microseconds, not %q", minCPUPeriod, maxCPUPeriod, f[1])
	}
	return f[0] + " " + f[1], nil
}

// signals are the signal names a declaration may use, in the order messages
// list them.
var signals = []struct {
	name string
	sig  syscall.Signal
}{
	{"HUP", syscall.SIGHUP},
	{"INT", syscall.SIGINT},
	{"QUIT", syscall.SIGQUIT},
	{"USR1", syscall.SIGUSR1},
	{"USR2", syscall.SIGUSR2},
	{"ALRM", syscall.SIGALRM},
	{"TERM", syscall.SIGTERM},
	{"WINCH", syscall.SIGWINCH},
}

var (
	// reloadSignals are those a service can catch and be expected to
	// treat as "re-read your configuration".
	reloadSignals = []string{"HUP", "INT", "QUIT", "USR1", "USR2", "ALRM", "TERM", "WINCH"}
	// readinessSignals are sent to PID 1, which uses HUP, INT and TERM.
	readinessSignals = []string{"USR1", "USR2"}
)

// signal is a signal name, with or without "SIG", from allowed.
func signal(v any, allowed []string) (syscall.Signal, error) {
	s, err := str(v)
	if err != nil {
		return 0, err
	}
	if name := strings.TrimPrefix(s, "SIG"); slices.Contains(allowed, name) {
		for _, sig := range signals {
			if sig.name == name {
				return sig.sig, nil
			}
		}
	}
	names := make([]string, len(allowed))
	for i, a := range allowed {
		names[i] = "SIG" + a
	}
	return 0, fmt.Errorf("must be %s, not %q", joinOr(names), s)
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
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
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

// maxIDMaps is the kernel's limit on lines in a uid_map or gid_map.
const maxIDMaps = 340

// idMaps is a list of "INSIDE OUTSIDE COUNT" lines, as the kernel's
// uid_map and gid_map take them: ids below 2³² - 1, COUNT at least 1.
func idMaps(v any) ([]IDMap, error) {
	lines, err := strList(v)
	if err != nil {
		return nil, err
	}
	if len(lines) > maxIDMaps {
		return nil, fmt.Errorf("has %d lines; the kernel takes at most %d", len(lines), maxIDMaps)
	}
	var out []IDMap
	for i, line := range lines {
		f := strings.Fields(line)
		var n [3]int64
		ok := len(f) == 3
		for j := 0; ok && j < 3; j++ {
			n[j], err = strconv.ParseInt(f[j], 10, 64)
			ok = err == nil && n[j] >= 0 && n[j] < math.MaxUint32
		}
		if !ok || n[2] < 1 || n[0]+n[2] > math.MaxUint32 || n[1]+n[2] > math.MaxUint32 {
			return nil, fmt.Errorf("element %d must be \"INSIDE OUTSIDE COUNT\", three ids with COUNT >= 1, like \"0 100000 65536\", not %q", i+1, line)
		}
		out = append(out, IDMap{Inside: int(n[0]), Outside: int(n[1]), Count: int(n[2])})
	}
	return out, nil
}

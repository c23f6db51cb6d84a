package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Parse validates one declaration; file names it in errors, which are
// *FileError values naming the line of the key at fault. Keys are checked in
// file order and the first problem is reported.
func Parse(file string, data []byte) (Component, error) {
	doc, err := decode(data)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return Component{}, &FileError{File: file, Line: pe.Position.Line, Msg: pe.Message}
		}
		return Component{}, &FileError{File: file, Msg: err.Error()}
	}
	p := &parser{file: file, doc: doc, c: defaults()}
	p.c.File = file
	if err := p.walk(); err != nil {
		return Component{}, err
	}
	if err := p.check(); err != nil {
		return Component{}, err
	}
	return p.c, nil
}

// defaults is a component before any key is read.
func defaults() Component {
	return Component{
		Type:    Service,
		Handoff: HandoffNone,
		Readiness: Readiness{
			Timeout:  30 * time.Second,
			Interval: 5 * time.Second,
		},
		Health: Health{
			Interval:         60 * time.Second,
			Timeout:          10 * time.Second,
			FailThreshold:    3,
			RestartThreshold: 5,
		},
		Restart:    Restart{Max: 5, Window: 30 * time.Second},
		Isolation:  Isolation{Root: "/"},
		Checkpoint: Checkpoint{LeaveRunning: true, MaxAge: 24 * time.Hour},
	}
}

// parser holds one file's state between reading keys one by one (walk) and
// the rules that involve several keys (check).
type parser struct {
	file string
	doc  *document
	c    Component
}

func (p *parser) fail(key toml.Key, format string, args ...any) error {
	return &FileError{File: p.file, Line: p.doc.line(key), Msg: fmt.Sprintf(format, args...)}
}

// walk visits the keys in file order: sections must be known tables, keys
// must be known in their section, and each value goes through its setter.
func (p *parser) walk() error {
	md := &p.doc.md
	done := map[string]bool{}
	for _, k := range md.Keys() {
		sec := k[0]
		known, ok := sections[sec]
		typ := md.Type(sec)
		switch {
		case !ok && len(k) == 1 && typ != "Hash" && typ != "ArrayHash":
			return p.fail(k, "%s", outside(sec))
		case !ok:
			return p.fail(k[:1], "unknown section [%s]%s", k[:1], hint(sec, ""))
		case typ != "" && typ != "Hash":
			// "" is a table made implicitly by a dotted key.
			return p.fail(k[:1], "[%s] must be a single table, not %s", sec, metaType(typ))
		case len(k) == 1:
			continue
		}
		key := k[:2]
		set, ok := known[key[1]]
		if !ok {
			return p.fail(key, "unknown key %q in [%s]%s", key[1], sec, hint(sec, key[1]))
		}
		if done[key.String()] {
			continue // a deeper key of a value that was already read
		}
		done[key.String()] = true
		prim, _ := p.doc.lookup(key)
		var v any
		if err := md.PrimitiveDecode(prim, &v); err != nil {
			return p.fail(key, "%s: %v", key, err)
		}
		if err := set(&p.c, v); err != nil {
			return p.fail(key, "%s: %v", key, err)
		}
	}
	return nil
}

// Keys the rules of check talk about.
var (
	keyName             = toml.Key{"component", "name"}
	keyBinary           = toml.Key{"component", "binary"}
	keyHandoff          = toml.Key{"component", "handoff"}
	keyLifecycleHandoff = toml.Key{"lifecycle", "handoff"}
	keyReadiness        = toml.Key{"lifecycle", "readiness"}
	keyReadinessFile    = toml.Key{"lifecycle", "readiness_file"}
	keyReadinessCheck   = toml.Key{"lifecycle", "readiness_check"}
	keyReadinessCommand = toml.Key{"lifecycle", "readiness_command"}
	keyReadinessSignal  = toml.Key{"lifecycle", "readiness_signal"}
	keyReadinessTimeout = toml.Key{"lifecycle", "readiness_timeout"}
	keyReadinessInt     = toml.Key{"lifecycle", "readiness_interval"}
	keyHealth           = toml.Key{"lifecycle", "health"}
	keyHealthCheck      = toml.Key{"lifecycle", "health_check"}
	keyHealthFile       = toml.Key{"lifecycle", "health_file"}
	keyHealthInterval   = toml.Key{"lifecycle", "health_interval"}
	keyHealthTimeout    = toml.Key{"lifecycle", "health_timeout"}
	keyHealthFail       = toml.Key{"lifecycle", "health_fail_threshold"}
	keyHealthFailures   = toml.Key{"lifecycle", "health_failures"}
	keyHealthRestart    = toml.Key{"lifecycle", "health_restart_threshold"}
	keyMemoryMax        = toml.Key{"resources", "memory_max"}
	keyMemoryHigh       = toml.Key{"resources", "memory_high"}
	keyNamespaces       = toml.Key{"isolation", "namespaces"}
	keyHostname         = toml.Key{"isolation", "hostname"}
	keyPrivateTmp       = toml.Key{"isolation", "private_tmp"}
	keyUIDMap           = toml.Key{"isolation", "uid_map"}
	keyGIDMap           = toml.Key{"isolation", "gid_map"}
	keyOptional         = toml.Key{"optional", "capabilities"}
	keyRequires         = toml.Key{"requires", "capabilities"}

	readinessKeys = []toml.Key{keyReadiness, keyReadinessFile, keyReadinessCheck,
		keyReadinessCommand, keyReadinessSignal, keyReadinessTimeout, keyReadinessInt}
	healthKeys = []toml.Key{keyHealth, keyHealthCheck, keyHealthFile, keyHealthInterval, keyHealthTimeout,
		keyHealthFail, keyHealthFailures, keyHealthRestart}
)

// check applies the rules that involve more than one key, and the defaults
// that depend on other keys.
func (p *parser) check() error {
	c := &p.c
	switch {
	case !p.doc.md.IsDefined(keyName...):
		return p.fail(toml.Key{"component"}, "[component] has no name")
	case !p.doc.md.IsDefined(keyBinary...):
		return p.fail(toml.Key{"component"}, "component %q has no binary", c.Name)
	}
	// Two spellings of one setting would let an edit of one silently lose
	// to the other.
	for _, pair := range [][2]toml.Key{
		{keyHandoff, keyLifecycleHandoff},
		{keyReadinessCheck, keyReadinessCommand},
		{keyHealthFail, keyHealthFailures},
	} {
		if ks := p.defined(pair[:]...); len(ks) == 2 {
			return p.fail(ks[1], "%s: already set by %s on line %d; keep one of the two", ks[1], ks[0], p.doc.line(ks[0]))
		}
	}
	if c.Type == Oneshot {
		if ks := p.defined(readinessKeys...); len(ks) > 0 {
			return p.fail(ks[0], "%s: readiness applies to services; a oneshot is ready when it exits 0", ks[0])
		}
		if ks := p.defined(healthKeys...); len(ks) > 0 {
			return p.fail(ks[0], "%s: health checks apply to services; a oneshot runs to completion", ks[0])
		}
	}
	if err := p.checkReadiness(); err != nil {
		return err
	}
	if err := p.checkHealth(); err != nil {
		return err
	}
	if r := c.Resources; r.MemoryMax > 0 && r.MemoryHigh > r.MemoryMax {
		return p.fail(keyMemoryHigh, "%s: %d bytes is above %s (%d bytes), so it would never throttle",
			keyMemoryHigh, r.MemoryHigh, keyMemoryMax, r.MemoryMax)
	}
	if c.Resources.Cgroup == "" {
		c.Resources.Cgroup = c.Name
	}
	iso := c.Isolation
	if iso.Hostname != "" && !slices.Contains(iso.Namespaces, "uts") {
		return p.fail(keyHostname, "%s: needs the uts namespace; add \"uts\" to %s", keyHostname, keyNamespaces)
	}
	if iso.PrivateTmp && !slices.Contains(iso.Namespaces, "mount") {
		return p.fail(keyPrivateTmp, "%s: needs the mount namespace; add \"mount\" to %s", keyPrivateTmp, keyNamespaces)
	}
	if ks := p.defined(keyUIDMap, keyGIDMap); len(ks) > 0 && !slices.Contains(iso.Namespaces, "user") {
		return p.fail(ks[0], "%s: needs the user namespace; add \"user\" to %s", ks[0], keyNamespaces)
	}
	for _, name := range c.Optional {
		if slices.Contains(c.Requires, name) {
			return p.fail(keyOptional, "%s: %q is also in %s; a capability is either required or optional",
				keyOptional, name, keyRequires)
		}
	}
	return nil
}

// methodKeys are the keys that select a readiness method by being set.
var methodKeys = map[string]ReadinessMethod{
	keyReadinessFile.String():    ReadyFile,
	keyReadinessCheck.String():   ReadyCommand,
	keyReadinessCommand.String(): ReadyCommand,
	keyReadinessSignal.String():  ReadySignal,
}

// checkReadiness settles the readiness method: the selector and the method
// keys must agree, and a selected method must have what it needs.
func (p *parser) checkReadiness() error {
	r := &p.c.Readiness
	selected := r.Method // set by the readiness key, "" without it
	var first toml.Key
	ks := p.defined(keyReadiness, keyReadinessFile, keyReadinessCheck, keyReadinessCommand, keyReadinessSignal)
	for _, k := range ks {
		m, ok := methodKeys[k.String()]
		if !ok {
			m = selected
		}
		if first == nil {
			first, r.Method = k, m
			continue
		}
		if m != r.Method {
			return p.fail(k, "%s: selects readiness %q, but %s on line %d selects %q; keep one",
				k, m, first, p.doc.line(first), r.Method)
		}
	}
	need := map[ReadinessMethod]toml.Key{ReadyFile: keyReadinessFile, ReadyCommand: keyReadinessCheck, ReadySignal: keyReadinessSignal}
	if k, ok := need[selected]; ok && len(ks) == 1 {
		return p.fail(keyReadiness, "%s: %q needs %s", keyReadiness, selected, k)
	}
	if r.Method == "" {
		r.Method = ReadyNone
	}
	if r.Method == ReadyNone && p.doc.md.IsDefined(keyReadinessTimeout...) {
		return p.fail(keyReadinessTimeout, "%s: has no effect without a readiness method", keyReadinessTimeout)
	}
	if r.Method != ReadyCommand && p.doc.md.IsDefined(keyReadinessInt...) {
		return p.fail(keyReadinessInt, "%s: applies only to readiness \"command\", not %q", keyReadinessInt, r.Method)
	}
	return nil
}

// healthMethodKeys are the keys that select a health method by being set.
var healthMethodKeys = map[string]HealthMethod{
	keyHealthCheck.String(): HealthCommand,
	keyHealthFile.String():  HealthFile,
}

// checkHealth settles the health method the way checkReadiness settles the
// readiness method. The settings of the checks need a method, and
// service-reported health needs the notify socket, which a service gets
// with notify (or signal) readiness.
func (p *parser) checkHealth() error {
	h := &p.c.Health
	selected := h.Method // set by the health key, "" without it
	var first toml.Key
	ks := p.defined(keyHealth, keyHealthCheck, keyHealthFile)
	for _, k := range ks {
		m, ok := healthMethodKeys[k.String()]
		if !ok {
			m = selected
		}
		if first == nil {
			first, h.Method = k, m
			continue
		}
		if m != h.Method {
			return p.fail(k, "%s: selects health %q, but %s on line %d selects %q; keep one",
				k, m, first, p.doc.line(first), h.Method)
		}
	}
	need := map[HealthMethod]toml.Key{HealthCommand: keyHealthCheck, HealthFile: keyHealthFile}
	if k, ok := need[selected]; ok && len(ks) == 1 {
		return p.fail(keyHealth, "%s: %q needs %s", keyHealth, selected, k)
	}
	if h.Method == "" {
		h.Method = HealthNone
	}
	if h.Method == HealthNone {
		for _, k := range p.defined(healthKeys...) {
			if !slices.Equal(k, keyHealth) {
				return p.fail(k, "%s: has no effect without a health check (%s, %s or %s = %q)",
					k, keyHealthCheck, keyHealthFile, keyHealth, HealthNotify)
			}
		}
	}
	if r := p.c.Readiness.Method; h.Method == HealthNotify && r != ReadyNotify && r != ReadySignal {
		return p.fail(keyHealth, "%s: %q needs %s = %q: the service gets $NOTIFY_SOCKET with it",
			keyHealth, HealthNotify, keyReadiness, ReadyNotify)
	}
	return nil
}

// defined returns those of keys the file sets, in file order.
func (p *parser) defined(keys ...toml.Key) []toml.Key {
	var out []toml.Key
	for _, k := range p.doc.md.Keys() {
		for _, want := range keys {
			if slices.Equal(k, want) {
				out = append(out, k)
			}
		}
	}
	return out
}

// outside is the message for a key set before any section header.
func outside(key string) string {
	if secs := sectionsOf(key); len(secs) > 0 {
		return fmt.Sprintf("key %q is outside any section; it belongs in %s", key, joinOr(secs))
	}
	return fmt.Sprintf("unknown key %q outside any section", key)
}

// refused are spellings found in the reference's examples for settings we
// do not support; the file is rejected, with a pointer where one helps.
var refused = map[string]string{
	"hotswap":                 "; hot-swap is chosen with handoff in [lifecycle], its details are not configurable",
	"monitoring":              " (not supported)",
	"security":                " (not supported)",
	"provides.sockets":        " (not supported)",
	"lifecycle.state_file":    " (not supported)",
	"resources.cgroup_path":   "; use cgroup",
	"resources.processes_max": "; use pids_max",
	"resources.files_max":     " (not supported)",
}

// hint completes an "unknown key" (or, with key "", "unknown section")
// message with what the author probably meant.
func hint(sec, key string) string {
	id := sec
	if key != "" {
		id += "." + key
	}
	if why, ok := refused[id]; ok {
		return why
	}
	if key == "" {
		return ""
	}
	if secs := sectionsOf(key); len(secs) > 0 {
		return "; it belongs in " + joinOr(secs)
	}
	if lower := strings.ToLower(key); lower != key && sections[sec][lower] != nil {
		return fmt.Sprintf("; keys are lower case: %q", lower)
	}
	return ""
}

// sectionsOf lists the sections that accept key, as "[name]".
func sectionsOf(key string) []string {
	var out []string
	for _, sec := range sectionOrder {
		if sections[sec][key] != nil {
			out = append(out, "["+sec+"]")
		}
	}
	return out
}

func joinOr(items []string) string {
	if len(items) == 1 {
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}

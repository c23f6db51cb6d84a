package config

import (
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"time"
)

// A setter checks one key's value on its own and stores it in c. Rules that
// involve several keys are in parser.check.
type setter func(c *Component, v any) error

// sectionOrder is the order in which sections are named in messages.
var sectionOrder = []string{"component", "provides", "requires", "optional",
	"lifecycle", "resources", "isolation", "checkpoint"}

// sections are the accepted keys of each section; the package
// documentation has the same table for people.
var sections = map[string]map[string]setter{
	"component": {
		"name":    setName,
		"binary":  func(c *Component, v any) (err error) { c.Binary, err = absPath(v); return },
		"args":    func(c *Component, v any) (err error) { c.Args, err = strList(v); return },
		"type":    setType,
		"handoff": setHandoff,
	},
	"provides": {"capabilities": func(c *Component, v any) (err error) { c.Provides, err = capabilities(v); return }},
	"requires": {"capabilities": func(c *Component, v any) (err error) { c.Requires, err = capabilities(v); return }},
	"optional": {"capabilities": func(c *Component, v any) (err error) { c.Optional, err = capabilities(v); return }},
	"lifecycle": {
		"handoff":       setHandoff,
		"reload_signal": func(c *Component, v any) (err error) { c.Reload, err = signal(v, reloadSignals); return },

		"readiness":         setReadiness,
		"readiness_file":    func(c *Component, v any) (err error) { c.Readiness.File, err = absPath(v); return },
		"readiness_check":   setReadinessCommand,
		"readiness_command": setReadinessCommand,
		"readiness_signal":  setReadinessSignal,
		"readiness_timeout": func(c *Component, v any) (err error) { c.Readiness.Timeout, err = duration(v, time.Second); return },
		"readiness_interval": func(c *Component, v any) (err error) {
			c.Readiness.Interval, err = duration(v, time.Second)
			return
		},

		"health":                   setHealth,
		"health_check":             func(c *Component, v any) (err error) { c.Health.Command, err = nonEmpty(v); return },
		"health_file":              func(c *Component, v any) (err error) { c.Health.File, err = absPath(v); return },
		"health_interval":          func(c *Component, v any) (err error) { c.Health.Interval, err = duration(v, time.Second); return },
		"health_timeout":           func(c *Component, v any) (err error) { c.Health.Timeout, err = duration(v, time.Second); return },
		"health_fail_threshold":    setFailThreshold,
		"health_failures":          setFailThreshold,
		"health_restart_threshold": func(c *Component, v any) (err error) { c.Health.RestartThreshold, err = integer(v, 1); return },

		"restart_max":    func(c *Component, v any) (err error) { c.Restart.Max, err = integer(v, 0); return },
		"restart_window": func(c *Component, v any) (err error) { c.Restart.Window, err = duration(v, time.Second); return },
	},
	"resources": {
		"cgroup":      setCgroup,
		"memory_max":  func(c *Component, v any) (err error) { c.Resources.MemoryMax, err = size(v); return },
		"memory_high": func(c *Component, v any) (err error) { c.Resources.MemoryHigh, err = size(v); return },
		"cpu_weight":  func(c *Component, v any) (err error) { c.Resources.CPUWeight, err = weight(v); return },
		"cpu_max":     func(c *Component, v any) (err error) { c.Resources.CPUMax, err = cpuMax(v); return },
		"io_weight":   func(c *Component, v any) (err error) { c.Resources.IOWeight, err = weight(v); return },
		"pids_max":    setPidsMax,
	},
	"isolation": {
		"namespaces":  func(c *Component, v any) (err error) { c.Isolation.Namespaces, err = namespaces(v); return },
		"root":        setRoot,
		"hostname":    setHostname,
		"private_tmp": func(c *Component, v any) (err error) { c.Isolation.PrivateTmp, err = boolean(v); return },
		"uid_map":     func(c *Component, v any) (err error) { c.Isolation.UIDMap, err = idMaps(v); return },
		"gid_map":     func(c *Component, v any) (err error) { c.Isolation.GIDMap, err = idMaps(v); return },
	},
	"checkpoint": {
		"enabled":         func(c *Component, v any) (err error) { c.Checkpoint.Enabled, err = boolean(v); return },
		"preserve_fds":    func(c *Component, v any) (err error) { c.Checkpoint.PreserveFDs, err = tokenSet(v); return },
		"leave_running":   func(c *Component, v any) (err error) { c.Checkpoint.LeaveRunning, err = boolean(v); return },
		"memory_estimate": func(c *Component, v any) (err error) { c.Checkpoint.MemoryEstimateMB, err = integer(v, 0); return },
		// The reference counts max_age in hours; a bare number keeps meaning that.
		"max_age": func(c *Component, v any) (err error) { c.Checkpoint.MaxAge, err = duration(v, time.Hour); return },
	},
}

// validName keeps names usable as file names (/run/graph/<name>.log) and
// as graphctl arguments, which a leading '-' would turn into an option.
var validName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]*$`)

// maxName leaves room for ".log" in a 255-byte file name.
const maxName = 255 - len(".log")

func setName(c *Component, v any) error {
	s, err := str(v)
	switch {
	case err != nil:
		return err
	case !validName.MatchString(s):
		return fmt.Errorf("%q is not a valid name: use letters, digits, '.', '_' and '-', starting with a letter, digit or '_'", s)
	case len(s) > maxName:
		return fmt.Errorf("is %d bytes long; at most %d fit a log file name", len(s), maxName)
	}
	c.Name = s
	return nil
}

func setType(c *Component, v any) error {
	s, err := oneOf(v, string(Service), string(Oneshot))
	c.Type = Type(s)
	return err
}

func setHandoff(c *Component, v any) (err error) {
	c.Handoff, err = oneOf(v, HandoffNone, HandoffFDPassing, HandoffStateFile, HandoffCheckpoint)
	return err
}

func setReadiness(c *Component, v any) error {
	s, err := oneOf(v, string(ReadyFile), string(ReadyCommand), string(ReadySignal), string(ReadyNotify), string(ReadyNone))
	c.Readiness.Method = ReadinessMethod(s)
	return err
}

func setReadinessCommand(c *Component, v any) (err error) {
	c.Readiness.Command, err = nonEmpty(v)
	return err
}

func setReadinessSignal(c *Component, v any) (err error) {
	c.Readiness.Signal, err = signal(v, readinessSignals)
	if err != nil {
		return fmt.Errorf("%w (PID 1 keeps SIGHUP for reload and SIGINT and SIGTERM for shutdown)", err)
	}
	return nil
}

func setHealth(c *Component, v any) error {
	s, err := oneOf(v, string(HealthCommand), string(HealthFile), string(HealthNotify), string(HealthNone))
	c.Health.Method = HealthMethod(s)
	return err
}

func setFailThreshold(c *Component, v any) (err error) {
	c.Health.FailThreshold, err = integer(v, 1)
	return err
}

func setCgroup(c *Component, v any) error {
	s, err := str(v)
	if err != nil {
		return err
	}
	if !filepath.IsLocal(s) || filepath.Clean(s) != s {
		return fmt.Errorf("must be a clean relative path below /sys/fs/cgroup/graph, like \"apps/web\", not %q", s)
	}
	c.Resources.Cgroup = s
	return nil
}

func setPidsMax(c *Component, v any) error {
	if v == "max" {
		c.Resources.PidsMax = 0
		return nil
	}
	n, err := integer(v, 0)
	if err != nil {
		return fmt.Errorf("%w (or \"max\")", err)
	}
	c.Resources.PidsMax = n
	return nil
}

func setRoot(c *Component, v any) error {
	s, err := absPath(v)
	if err != nil {
		return err
	}
	c.Isolation.Root = filepath.Clean(s)
	return nil
}

// validHostname is RFC 1123: dot-separated labels of letters, digits and
// inner hyphens.
var validHostname = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)

// maxHostname is the kernel's HOST_NAME_MAX.
const maxHostname = 64

func setHostname(c *Component, v any) error {
	s, err := str(v)
	if err != nil {
		return err
	}
	if !validHostname.MatchString(s) || len(s) > maxHostname {
		return fmt.Errorf("%q is not a host name: dot-separated labels of letters, digits and inner '-', at most %d bytes", s, maxHostname)
	}
	c.Isolation.Hostname = s
	return nil
}

// integer is a TOML integer of at least min that fits an int.
func integer(v any, min int) (int, error) {
	n, ok := v.(int64)
	switch {
	case !ok:
		return 0, fmt.Errorf("must be an integer, not %s", tomlType(v))
	case n < int64(min):
		return 0, fmt.Errorf("must be at least %d, not %d", min, n)
	case n > math.MaxInt:
		return 0, fmt.Errorf("%d is too large", n)
	}
	return int(n), nil
}

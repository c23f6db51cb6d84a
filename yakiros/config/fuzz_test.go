package config

import (
	"bytes"
	"errors"
	"syscall"
	"testing"

	"github.com/BurntSushi/toml"
)

// FuzzParse: Parse never panics; a rejection is a *FileError naming the
// file and a line that exists; an accepted component, written back out with
// every setting spelled canonically, parses to the same component, and
// writing that out again gives the same text.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.toml", data)
		if err != nil {
			var fe *FileError
			if !errors.As(err, &fe) || fe.File != "f.toml" || fe.Line < 0 || fe.Line > bytes.Count(data, []byte("\n"))+1 {
				t.Fatalf("Parse error %#v is not a FileError for f.toml with a line of the file", err)
			}
			return
		}
		text := canonical(t, c)
		again, err := Parse("g.toml", text)
		if err != nil {
			t.Fatalf("Parse(canonical form) error: %v\ninput:\n%s\ncanonical form:\n%s", err, data, text)
		}
		if !Same(c, again) {
			t.Fatalf("Parse(canonical form) =\n%+v\nwant\n%+v\ncanonical form:\n%s", again, c, text)
		}
		if text2 := canonical(t, again); !bytes.Equal(text, text2) {
			t.Fatalf("canonical form is not stable:\n%s\nthen\n%s", text, text2)
		}
	})
}

// canonical writes c back as a declaration that sets every key that applies,
// in one spelling: durations as Go duration strings, sizes in bytes, lists as
// arrays, handoff in [lifecycle].
func canonical(t *testing.T, c Component) []byte {
	t.Helper()
	comp := map[string]any{"name": c.Name, "binary": c.Binary, "type": string(c.Type)}
	if c.Args != nil {
		comp["args"] = c.Args
	}
	doc := map[string]any{"component": comp}
	for sec, caps := range map[string][]string{"provides": c.Provides, "requires": c.Requires, "optional": c.Optional} {
		if caps != nil {
			doc[sec] = map[string]any{"capabilities": caps}
		}
	}

	life := map[string]any{
		"handoff":        c.Handoff,
		"restart_max":    c.Restart.Max,
		"restart_window": c.Restart.Window.String(),
	}
	if c.Reload != 0 {
		life["reload_signal"] = signalName(t, c.Reload)
	}
	if r := c.Readiness; r.Method != ReadyNone {
		life["readiness"] = string(r.Method)
		life["readiness_timeout"] = r.Timeout.String()
		switch r.Method {
		case ReadyFile:
			life["readiness_file"] = r.File
		case ReadyCommand:
			life["readiness_check"] = r.Command
			life["readiness_interval"] = r.Interval.String()
		case ReadySignal:
			life["readiness_signal"] = signalName(t, r.Signal)
		}
	}
	if h := c.Health; h.Method != HealthNone {
		life["health"] = string(h.Method)
		switch h.Method {
		case HealthCommand:
			life["health_check"] = h.Command
		case HealthFile:
			life["health_file"] = h.File
		}
		life["health_interval"] = h.Interval.String()
		life["health_timeout"] = h.Timeout.String()
		life["health_fail_threshold"] = h.FailThreshold
		life["health_restart_threshold"] = h.RestartThreshold
	}
	doc["lifecycle"] = life

	r := c.Resources
	res := map[string]any{"cgroup": r.Cgroup, "pids_max": r.PidsMax}
	for key, n := range map[string]int64{"memory_max": r.MemoryMax, "memory_high": r.MemoryHigh} {
		if n > 0 {
			res[key] = n
		}
	}
	for key, n := range map[string]int{"cpu_weight": r.CPUWeight, "io_weight": r.IOWeight} {
		if n > 0 {
			res[key] = n
		}
	}
	if r.CPUMax != "" {
		res["cpu_max"] = r.CPUMax
	}
	doc["resources"] = res

	iso := map[string]any{"root": c.Isolation.Root, "private_tmp": c.Isolation.PrivateTmp}
	if c.Isolation.Namespaces != nil {
		iso["namespaces"] = c.Isolation.Namespaces
	}
	if c.Isolation.Hostname != "" {
		iso["hostname"] = c.Isolation.Hostname
	}
	doc["isolation"] = iso

	cp := c.Checkpoint
	check := map[string]any{"enabled": cp.Enabled, "leave_running": cp.LeaveRunning,
		"memory_estimate": cp.MemoryEstimateMB, "max_age": cp.MaxAge.String()}
	if cp.PreserveFDs != nil {
		check["preserve_fds"] = cp.PreserveFDs
	}
	doc["checkpoint"] = check

	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(doc); err != nil {
		t.Fatalf("encode %+v: %v", c, err)
	}
	return b.Bytes()
}

func signalName(t *testing.T, sig syscall.Signal) string {
	t.Helper()
	for _, s := range signals {
		if s.sig == sig {
			return "SIG" + s.name
		}
	}
	t.Fatalf("signal %v is not in the table", sig)
	return ""
}

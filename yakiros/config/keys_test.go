package config

import (
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

// keyHead is the start of every case in TestKeys: the case's own text
// begins on line 4, in [component].
const keyHead = "[component]\nname = \"a\"\nbinary = \"/bin/a\"\n"

// TestKeys proves each key's accepted values (what they become in the
// model) and its rejected ones (the exact message and line).
func TestKeys(t *testing.T) {
	base, err := Parse("f.toml", []byte(keyHead))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		text string             // appended to keyHead
		want func(c *Component) // the change from base; nil when err is set
		err  string             // the message after "f.toml:"
	}{
		// [component]
		{"args", "args = [\"-v\", \"x y\"]", func(c *Component) { c.Args = []string{"-v", "x y"} }, ""},
		{"args empty", "args = []", func(c *Component) {}, ""},
		{"args not an array", "args = \"-v\"", nil, "4: component.args: must be an array of strings, not a string"},
		{"type service", "type = \"service\"", func(c *Component) {}, ""},
		{"type oneshot", "type = \"oneshot\"", func(c *Component) { c.Type = Oneshot }, ""},
		{"type upper case", "type = \"Oneshot\"", nil, `4: component.type: must be "service" or "oneshot", not "Oneshot"`},
		{"handoff in component", "handoff = \"fd-passing\"", func(c *Component) { c.Handoff = HandoffFDPassing }, ""},
		{"handoff unknown", "handoff = \"criu\"", nil,
			`4: component.handoff: must be "none", "fd-passing", "state-file" or "checkpoint", not "criu"`},

		// [provides], [requires], [optional]
		{"provides", "[provides]\ncapabilities = [\"http\", \"http.v2\"]", func(c *Component) { c.Provides = []string{"http", "http.v2"} }, ""},
		{"requires keeps order", "[requires]\ncapabilities = [\"z\", \"a\"]", func(c *Component) { c.Requires = []string{"z", "a"} }, ""},
		{"optional", "[optional]\ncapabilities = [\"net.dns\"]", func(c *Component) { c.Optional = []string{"net.dns"} }, ""},
		{"capabilities empty", "[optional]\ncapabilities = []", func(c *Component) {}, ""},
		{"capability with tab", "[optional]\ncapabilities = [\"a\\tb\"]", nil,
			`5: optional.capabilities: "a\tb" is not a capability name: it must be non-empty and contain no whitespace`},
		{"required and optional", "[requires]\ncapabilities = [\"x\"]\n[optional]\ncapabilities = [\"y\", \"x\"]", nil,
			`7: optional.capabilities: "x" is also in requires.capabilities; a capability is either required or optional`},
		{"provides sockets", "[provides]\nsockets = [\"/run/a.sock\"]", nil, `5: unknown key "sockets" in [provides] (not supported)`},

		// [lifecycle] handoff and reload_signal
		{"handoff none", "[lifecycle]\nhandoff = \"none\"", func(c *Component) {}, ""},
		{"handoff fd-passing", "[lifecycle]\nhandoff = \"fd-passing\"", func(c *Component) { c.Handoff = HandoffFDPassing }, ""},
		{"handoff state-file", "[lifecycle]\nhandoff = \"state-file\"", func(c *Component) { c.Handoff = HandoffStateFile }, ""},
		{"handoff checkpoint", "[lifecycle]\nhandoff = \"checkpoint\"", func(c *Component) { c.Handoff = HandoffCheckpoint }, ""},
		{"handoff twice", "handoff = \"none\"\n[lifecycle]\nhandoff = \"none\"", nil,
			"6: lifecycle.handoff: already set by component.handoff on line 4; keep one of the two"},
		{"reload_signal", "[lifecycle]\nreload_signal = \"SIGHUP\"", func(c *Component) { c.Reload = syscall.SIGHUP }, ""},
		{"reload_signal short", "[lifecycle]\nreload_signal = \"USR2\"", func(c *Component) { c.Reload = syscall.SIGUSR2 }, ""},
		{"reload_signal lower case", "[lifecycle]\nreload_signal = \"sighup\"", nil,
			`5: lifecycle.reload_signal: must be SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGTERM or SIGWINCH, not "sighup"`},
		{"reload_signal uncatchable", "[lifecycle]\nreload_signal = \"SIGKILL\"", nil,
			`5: lifecycle.reload_signal: must be SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGTERM or SIGWINCH, not "SIGKILL"`},
		{"reload_signal number", "[lifecycle]\nreload_signal = 1", nil, "5: lifecycle.reload_signal: must be a string, not an integer"},
		{"state_file", "[lifecycle]\nstate_file = \"/var/lib/a\"", nil, `5: unknown key "state_file" in [lifecycle] (not supported)`},

		// [lifecycle] readiness
		{"readiness notify", "[lifecycle]\nreadiness = \"notify\"", func(c *Component) { c.Readiness.Method = ReadyNotify }, ""},
		{"readiness none", "[lifecycle]\nreadiness = \"none\"", func(c *Component) {}, ""},
		{"readiness unknown", "[lifecycle]\nreadiness = \"immediate\"", nil,
			`5: lifecycle.readiness: must be "file", "command", "signal", "notify" or "none", not "immediate"`},
		{"readiness_file implies file", "[lifecycle]\nreadiness_file = \"/run/a.ready\"",
			func(c *Component) { c.Readiness.Method, c.Readiness.File = ReadyFile, "/run/a.ready" }, ""},
		{"readiness file with its key", "[lifecycle]\nreadiness = \"file\"\nreadiness_file = \"/run/a.ready\"",
			func(c *Component) { c.Readiness.Method, c.Readiness.File = ReadyFile, "/run/a.ready" }, ""},
		{"readiness file without its key", "[lifecycle]\nreadiness = \"file\"", nil,
			`5: lifecycle.readiness: "file" needs lifecycle.readiness_file`},
		{"readiness command without its key", "[lifecycle]\nreadiness = \"command\"", nil,
			`5: lifecycle.readiness: "command" needs lifecycle.readiness_check`},
		{"readiness signal without its key", "[lifecycle]\nreadiness = \"signal\"", nil,
			`5: lifecycle.readiness: "signal" needs lifecycle.readiness_signal`},
		{"readiness_file relative", "[lifecycle]\nreadiness_file = \"run/a.ready\"", nil,
			`5: lifecycle.readiness_file: must be an absolute path, not "run/a.ready"`},
		{"two readiness methods", "[lifecycle]\nreadiness_file = \"/run/a\"\nreadiness_check = \"true\"", nil,
			`6: lifecycle.readiness_check: selects readiness "command", but lifecycle.readiness_file on line 5 selects "file"; keep one`},
		{"selector against a method key", "[lifecycle]\nreadiness = \"notify\"\nreadiness_signal = \"SIGUSR1\"", nil,
			`6: lifecycle.readiness_signal: selects readiness "signal", but lifecycle.readiness on line 5 selects "notify"; keep one`},
		{"method key against a later selector", "[lifecycle]\nreadiness_file = \"/run/a\"\n\nreadiness = \"none\"", nil,
			`7: lifecycle.readiness: selects readiness "none", but lifecycle.readiness_file on line 5 selects "file"; keep one`},
		{"readiness_check", "[lifecycle]\nreadiness_check = \"test -S /run/a.sock\"",
			func(c *Component) { c.Readiness.Method, c.Readiness.Command = ReadyCommand, "test -S /run/a.sock" }, ""},
		{"readiness_command alias", "[lifecycle]\nreadiness = \"command\"\nreadiness_command = \"true\"",
			func(c *Component) { c.Readiness.Method, c.Readiness.Command = ReadyCommand, "true" }, ""},
		{"readiness_check and readiness_command", "[lifecycle]\nreadiness_check = \"true\"\nreadiness_command = \"true\"", nil,
			"6: lifecycle.readiness_command: already set by lifecycle.readiness_check on line 5; keep one of the two"},
		{"readiness_check blank", "[lifecycle]\nreadiness_check = \" \"", nil,
			"5: lifecycle.readiness_check: must not be empty (leave the key out instead)"},
		{"readiness_signal", "[lifecycle]\nreadiness_signal = \"SIGUSR1\"",
			func(c *Component) { c.Readiness.Method, c.Readiness.Signal = ReadySignal, syscall.SIGUSR1 }, ""},
		{"readiness_signal reload", "[lifecycle]\nreadiness_signal = \"SIGHUP\"", nil,
			`5: lifecycle.readiness_signal: must be SIGUSR1 or SIGUSR2, not "SIGHUP" (PID 1 keeps SIGHUP for reload and SIGINT and SIGTERM for shutdown)`},
		{"readiness_timeout seconds", "[lifecycle]\nreadiness = \"notify\"\nreadiness_timeout = 20",
			func(c *Component) { c.Readiness.Method, c.Readiness.Timeout = ReadyNotify, 20*time.Second }, ""},
		{"readiness_timeout string", "[lifecycle]\nreadiness = \"notify\"\nreadiness_timeout = \"500ms\"",
			func(c *Component) { c.Readiness.Method, c.Readiness.Timeout = ReadyNotify, 500*time.Millisecond }, ""},
		{"readiness_timeout zero", "[lifecycle]\nreadiness = \"notify\"\nreadiness_timeout = 0", nil,
			"6: lifecycle.readiness_timeout: must be at least 1 (seconds), not 0"},
		{"readiness_timeout negative", "[lifecycle]\nreadiness = \"notify\"\nreadiness_timeout = \"-2s\"", nil,
			`6: lifecycle.readiness_timeout: must be at least 1ms, not "-2s"`},
		{"readiness_timeout without unit", "[lifecycle]\nreadiness = \"notify\"\nreadiness_timeout = \"20\"", nil,
			`6: lifecycle.readiness_timeout: must be a number of seconds or a duration like "500ms", "2s" or "1m30s", not "20"`},
		{"readiness_timeout float", "[lifecycle]\nreadiness = \"notify\"\nreadiness_timeout = 1.5", nil,
			`6: lifecycle.readiness_timeout: must be a whole number of seconds or a duration string like "1.5s", not a float`},
		{"readiness_timeout too small", "[lifecycle]\nreadiness = \"notify\"\nreadiness_timeout = \"100us\"", nil,
			`6: lifecycle.readiness_timeout: must be at least 1ms, not "100us"`},
		{"readiness_timeout too long", "[lifecycle]\nreadiness = \"notify\"\nreadiness_timeout = 9223372037", nil,
			"6: lifecycle.readiness_timeout: 9223372037 seconds is too long"},
		{"readiness_timeout without a method", "[lifecycle]\nreadiness_timeout = 20", nil,
			"5: lifecycle.readiness_timeout: has no effect without a readiness method"},
		{"readiness_interval", "[lifecycle]\nreadiness_check = \"true\"\nreadiness_interval = \"250ms\"",
			func(c *Component) {
				c.Readiness.Method, c.Readiness.Command, c.Readiness.Interval = ReadyCommand, "true", 250*time.Millisecond
			}, ""},
		{"readiness_interval with a file", "[lifecycle]\nreadiness_interval = 1\nreadiness_file = \"/run/a\"", nil,
			`5: lifecycle.readiness_interval: applies only to readiness "command", not "file"`},

		// [lifecycle] health
		{"health", "[lifecycle]\nhealth_check = \"/bin/check\"\nhealth_interval = \"15s\"\nhealth_timeout = 2\n" +
			"health_fail_threshold = 1\nhealth_restart_threshold = 7", func(c *Component) {
			c.Health = Health{Method: HealthCommand, Command: "/bin/check", Interval: 15 * time.Second, Timeout: 2 * time.Second,
				FailThreshold: 1, RestartThreshold: 7}
		}, ""},
		{"health_failures alias", "[lifecycle]\nhealth_check = \"/bin/check\"\nhealth_failures = 4",
			func(c *Component) {
				c.Health.Method, c.Health.Command, c.Health.FailThreshold = HealthCommand, "/bin/check", 4
			}, ""},
		{"health selector command", "[lifecycle]\nhealth = \"command\"\nhealth_check = \"c\"",
			func(c *Component) { c.Health.Method, c.Health.Command = HealthCommand, "c" }, ""},
		{"health_file", "[lifecycle]\nhealth_file = \"/run/web/health\"\nhealth_interval = 1",
			func(c *Component) {
				c.Health.Method, c.Health.File, c.Health.Interval = HealthFile, "/run/web/health", time.Second
			}, ""},
		{"health_file relative", "[lifecycle]\nhealth_file = \"health\"", nil,
			`5: lifecycle.health_file: must be an absolute path, not "health"`},
		{"health notify", "[lifecycle]\nreadiness = \"notify\"\nhealth = \"notify\"\nhealth_timeout = \"500ms\"",
			func(c *Component) {
				c.Readiness.Method = ReadyNotify
				c.Health.Method, c.Health.Timeout = HealthNotify, 500*time.Millisecond
			}, ""},
		{"health notify with signal readiness", "[lifecycle]\nhealth = \"notify\"\nreadiness_signal = \"USR1\"",
			func(c *Component) {
				c.Readiness.Method, c.Readiness.Signal = ReadySignal, syscall.SIGUSR1
				c.Health.Method = HealthNotify
			}, ""},
		{"health notify without notify readiness", "[lifecycle]\nreadiness_file = \"/run/r\"\nhealth = \"notify\"", nil,
			`6: lifecycle.health: "notify" needs lifecycle.readiness = "notify": the service gets $NOTIFY_SOCKET with it`},
		{"health none", "[lifecycle]\nhealth = \"none\"", func(c *Component) {}, ""},
		{"health none with an interval", "[lifecycle]\nhealth = \"none\"\nhealth_interval = 5", nil,
			`6: lifecycle.health_interval: has no effect without a health check (lifecycle.health_check, lifecycle.health_file or lifecycle.health = "notify")`},
		{"health unknown", "[lifecycle]\nhealth = \"http\"", nil,
			`5: lifecycle.health: must be "command", "file", "notify" or "none", not "http"`},
		{"health file without health_file", "[lifecycle]\nhealth = \"file\"", nil,
			`5: lifecycle.health: "file" needs lifecycle.health_file`},
		{"health selector disagrees", "[lifecycle]\nhealth = \"file\"\nhealth_check = \"c\"", nil,
			`6: lifecycle.health_check: selects health "command", but lifecycle.health on line 5 selects "file"; keep one`},
		{"health_check and health_file", "[lifecycle]\nhealth_file = \"/h\"\nhealth_check = \"c\"", nil,
			`6: lifecycle.health_check: selects health "command", but lifecycle.health_file on line 5 selects "file"; keep one`},
		{"health_failures and health_fail_threshold", "[lifecycle]\nhealth_check = \"c\"\nhealth_failures = 4\nhealth_fail_threshold = 4", nil,
			"7: lifecycle.health_fail_threshold: already set by lifecycle.health_failures on line 6; keep one of the two"},
		{"health_check empty", "[lifecycle]\nhealth_check = \"\"", nil,
			"5: lifecycle.health_check: must not be empty (leave the key out instead)"},
		{"health_interval without health_check", "[lifecycle]\nhealth_timeout = 5\nhealth_interval = 5", nil,
			`5: lifecycle.health_timeout: has no effect without a health check (lifecycle.health_check, lifecycle.health_file or lifecycle.health = "notify")`},
		{"health_interval zero", "[lifecycle]\nhealth_check = \"c\"\nhealth_interval = 0", nil,
			"6: lifecycle.health_interval: must be at least 1 (seconds), not 0"},
		{"health_fail_threshold zero", "[lifecycle]\nhealth_check = \"c\"\nhealth_fail_threshold = 0", nil,
			"6: lifecycle.health_fail_threshold: must be at least 1, not 0"},
		{"health_restart_threshold negative", "[lifecycle]\nhealth_check = \"c\"\nhealth_restart_threshold = -1", nil,
			"6: lifecycle.health_restart_threshold: must be at least 1, not -1"},
		{"health_restart_threshold string", "[lifecycle]\nhealth_check = \"c\"\nhealth_restart_threshold = \"5\"", nil,
			"6: lifecycle.health_restart_threshold: must be an integer, not a string"},

		// [lifecycle] restart
		{"restart_max zero", "[lifecycle]\nrestart_max = 0", func(c *Component) { c.Restart.Max = 0 }, ""},
		{"restart", "[lifecycle]\nrestart_max = 3\nrestart_window = \"1m\"", func(c *Component) { c.Restart = Restart{Max: 3, Window: time.Minute} }, ""},
		{"restart_window seconds", "[lifecycle]\nrestart_window = 90", func(c *Component) { c.Restart.Window = 90 * time.Second }, ""},
		{"restart_max negative", "[lifecycle]\nrestart_max = -1", nil, "5: lifecycle.restart_max: must be at least 0, not -1"},
		{"restart_window zero", "[lifecycle]\nrestart_window = \"0s\"", nil, `5: lifecycle.restart_window: must be at least 1ms, not "0s"`},

		// oneshots
		{"oneshot readiness", "type = \"oneshot\"\n[lifecycle]\nreadiness_file = \"/run/a\"", nil,
			"6: lifecycle.readiness_file: readiness applies to services; a oneshot is ready when it exits 0"},
		{"oneshot health", "type = \"oneshot\"\n[lifecycle]\nrestart_max = 1\nhealth_check = \"c\"", nil,
			"7: lifecycle.health_check: health checks apply to services; a oneshot runs to completion"},
		{"oneshot health file", "type = \"oneshot\"\n[lifecycle]\nhealth_file = \"/h\"", nil,
			"6: lifecycle.health_file: health checks apply to services; a oneshot runs to completion"},
		{"oneshot restart", "type = \"oneshot\"\n[lifecycle]\nrestart_max = 1",
			func(c *Component) { c.Type, c.Restart.Max = Oneshot, 1 }, ""},

		// [resources]
		{"cgroup", "[resources]\ncgroup = \"apps/web\"", func(c *Component) { c.Resources.Cgroup = "apps/web" }, ""},
		{"cgroup absolute", "[resources]\ncgroup = \"/sys/fs/cgroup/x\"", nil,
			`5: resources.cgroup: must be a clean relative path below /sys/fs/cgroup/graph, like "apps/web", not "/sys/fs/cgroup/x"`},
		{"cgroup escapes", "[resources]\ncgroup = \"../x\"", nil,
			`5: resources.cgroup: must be a clean relative path below /sys/fs/cgroup/graph, like "apps/web", not "../x"`},
		{"cgroup unclean", "[resources]\ncgroup = \"apps//web/\"", nil,
			`5: resources.cgroup: must be a clean relative path below /sys/fs/cgroup/graph, like "apps/web", not "apps//web/"`},
		{"cgroup_path", "[resources]\ncgroup_path = \"x\"", nil, `5: unknown key "cgroup_path" in [resources]; use cgroup`},
		{"processes_max", "[resources]\nprocesses_max = 5", nil, `5: unknown key "processes_max" in [resources]; use pids_max`},
		{"files_max", "[resources]\nfiles_max = 5", nil, `5: unknown key "files_max" in [resources] (not supported)`},
		{"memory_max M", "[resources]\nmemory_max = \"50M\"", func(c *Component) { c.Resources.MemoryMax = 52428800 }, ""},
		{"memory_max k", "[resources]\nmemory_max = \"64k\"", func(c *Component) { c.Resources.MemoryMax = 65536 }, ""},
		{"memory_max G", "[resources]\nmemory_max = \"2G\"", func(c *Component) { c.Resources.MemoryMax = 2 << 30 }, ""},
		{"memory_max bytes", "[resources]\nmemory_max = 1_048_576", func(c *Component) { c.Resources.MemoryMax = 1 << 20 }, ""},
		{"memory_max digits", "[resources]\nmemory_max = \"8192\"", func(c *Component) { c.Resources.MemoryMax = 8192 }, ""},
		{"memory_max max", "[resources]\nmemory_max = \"max\"", func(c *Component) {}, ""},
		{"memory_max MB", "[resources]\nmemory_max = \"64MB\"", nil,
			`5: resources.memory_max: "64MB": write "64M" for binary multiples; a trailing "B" is not accepted`},
		{"memory_max MiB", "[resources]\nmemory_max = \"64MiB\"", nil,
			`5: resources.memory_max: "64MiB": write "64M" for binary multiples; a trailing "iB" is not accepted`},
		{"memory_max fraction", "[resources]\nmemory_max = \"1.5G\"", nil,
			`5: resources.memory_max: must be a number of bytes, a size like "50M" (K, M, G are 1024, 1024², 1024³) or "max", not "1.5G"`},
		{"memory_max T", "[resources]\nmemory_max = \"1T\"", nil,
			`5: resources.memory_max: must be a number of bytes, a size like "50M" (K, M, G are 1024, 1024², 1024³) or "max", not "1T"`},
		{"memory_max tiny", "[resources]\nmemory_max = 256", nil,
			`5: resources.memory_max: must be at least 4096 bytes (one page), not 256; "max" means no limit`},
		{"memory_max zero", "[resources]\nmemory_max = \"0M\"", nil,
			`5: resources.memory_max: must be at least 4096 bytes (one page), not "0M"; "max" means no limit`},
		{"memory_max overflow", "[resources]\nmemory_max = \"8589934592G\"", nil, `5: resources.memory_max: "8589934592G" is too large`},
		{"memory_max float", "[resources]\nmemory_max = 1e9", nil,
			`5: resources.memory_max: must be a number of bytes or a size string like "50M", not a float`},
		{"memory_high", "[resources]\nmemory_max = \"256M\"\nmemory_high = \"192M\"",
			func(c *Component) { c.Resources.MemoryMax, c.Resources.MemoryHigh = 256<<20, 192<<20 }, ""},
		{"memory_high alone", "[resources]\nmemory_high = \"1G\"", func(c *Component) { c.Resources.MemoryHigh = 1 << 30 }, ""},
		{"memory_high above memory_max", "[resources]\nmemory_high = \"2M\"\nmemory_max = \"1M\"", nil,
			"5: resources.memory_high: 2097152 bytes is above resources.memory_max (1048576 bytes), so it would never throttle"},
		{"cpu_weight", "[resources]\ncpu_weight = 1\nio_weight = 10000", func(c *Component) { c.Resources.CPUWeight, c.Resources.IOWeight = 1, 10000 }, ""},
		{"cpu_weight zero", "[resources]\ncpu_weight = 0", nil, "5: resources.cpu_weight: must be between 1 and 10000, not 0"},
		{"io_weight too big", "[resources]\nio_weight = 10001", nil, "5: resources.io_weight: must be between 1 and 10000, not 10001"},
		{"cpu_weight string", "[resources]\ncpu_weight = \"100\"", nil, "5: resources.cpu_weight: must be an integer, not a string"},
		{"cpu_max", "[resources]\ncpu_max = \"50000 100000\"", func(c *Component) { c.Resources.CPUMax = "50000 100000" }, ""},
		{"cpu_max quota only", "[resources]\ncpu_max = \"max\"", func(c *Component) { c.Resources.CPUMax = "max 100000" }, ""},
		{"cpu_max blanks", "[resources]\ncpu_max = \" 20000\t 50000 \"", func(c *Component) { c.Resources.CPUMax = "20000 50000" }, ""},
		{"cpu_max small quota", "[resources]\ncpu_max = \"500 100000\"", nil,
			`5: resources.cpu_max: quota must be "max" or a number of microseconds of at least 1000, not "500"`},
		{"cpu_max period", "[resources]\ncpu_max = \"max 2000000\"", nil,
			`5: resources.cpu_max: period must be between 1000 and 1000000 microseconds, not "2000000"`},
		{"cpu_max with a comment inside", "[resources]\ncpu_max = \"50000 100000  # half\"", nil,
			`5: resources.cpu_max: must be "QUOTA PERIOD" in microseconds, like "50000 100000" or "max 100000", not "50000 100000  # half"`},
		{"cpu_max with a comment outside", "[resources]\ncpu_max = \"50000 100000\"  # half a CPU",
			func(c *Component) { c.Resources.CPUMax = "50000 100000" }, ""},
		{"cpu_max empty", "[resources]\ncpu_max = \"\"", nil,
			`5: resources.cpu_max: must be "QUOTA PERIOD" in microseconds, like "50000 100000" or "max 100000", not ""`},
		{"pids_max", "[resources]\npids_max = 64", func(c *Component) { c.Resources.PidsMax = 64 }, ""},
		{"pids_max zero", "[resources]\npids_max = 0", func(c *Component) {}, ""},
		{"pids_max max", "[resources]\npids_max = \"max\"", func(c *Component) {}, ""},
		{"pids_max negative", "[resources]\npids_max = -1", nil, `5: resources.pids_max: must be at least 0, not -1 (or "max")`},

		// [isolation]
		{"namespaces string", "[isolation]\nnamespaces = \"uts, mnt,pid\"", func(c *Component) { c.Isolation.Namespaces = []string{"mount", "pid", "uts"} }, ""},
		{"namespaces array", "[isolation]\nnamespaces = [\"user\", \"net\", \"ipc\", \"mount\"]",
			func(c *Component) { c.Isolation.Namespaces = []string{"ipc", "mount", "net", "user"} }, ""},
		{"namespaces empty string", "[isolation]\nnamespaces = \"\"", func(c *Component) {}, ""},
		{"namespaces empty array", "[isolation]\nnamespaces = []", func(c *Component) {}, ""},
		{"namespaces unknown", "[isolation]\nnamespaces = \"mount,cgroup\"", nil,
			`5: isolation.namespaces: unknown namespace "cgroup"; known are mount (or mnt), pid, net, uts, ipc and user`},
		{"namespaces twice", "[isolation]\nnamespaces = [\"mnt\", \"mount\"]", nil, `5: isolation.namespaces: namespace "mount" is listed twice`},
		{"namespaces empty item", "[isolation]\nnamespaces = \"mount,,pid\"", nil, `5: isolation.namespaces: has an empty item in "mount,,pid"`},
		{"namespaces trailing comma", "[isolation]\nnamespaces = \"mount,\"", nil, `5: isolation.namespaces: has an empty item in "mount,"`},
		{"namespaces integer", "[isolation]\nnamespaces = 3", nil,
			"5: isolation.namespaces: must be an array of strings or a comma-separated string, not an integer"},
		{"uid_map", "[isolation]\nnamespaces = \"user\"\nuid_map = [\"0 100000 65536\"]\ngid_map = [\"0 0 1\", \"1 200 10\"]",
			func(c *Component) {
				c.Isolation.Namespaces = []string{"user"}
				c.Isolation.UIDMap = []IDMap{{0, 100000, 65536}}
				c.Isolation.GIDMap = []IDMap{{0, 0, 1}, {1, 200, 10}}
			}, ""},
		{"uid_map without user", "[isolation]\nnamespaces = \"pid\"\nuid_map = [\"0 0 1\"]", nil,
			`6: isolation.uid_map: needs the user namespace; add "user" to isolation.namespaces`},
		{"uid_map zero count", "[isolation]\nnamespaces = \"user\"\nuid_map = [\"0 0 0\"]", nil,
			`6: isolation.uid_map: element 1 must be "INSIDE OUTSIDE COUNT", three ids with COUNT >= 1, like "0 100000 65536", not "0 0 0"`},
		{"gid_map negative", "[isolation]\nnamespaces = \"user\"\ngid_map = [\"0 -1 1\"]", nil,
			`6: isolation.gid_map: element 1 must be "INSIDE OUTSIDE COUNT", three ids with COUNT >= 1, like "0 100000 65536", not "0 -1 1"`},
		{"root", "[isolation]\nroot = \"/srv/a/\"", func(c *Component) { c.Isolation.Root = "/srv/a" }, ""},
		{"root relative", "[isolation]\nroot = \"srv\"", nil, `5: isolation.root: must be an absolute path, not "srv"`},
		{"hostname", "[isolation]\nnamespaces = \"uts\"\nhostname = \"web-sandbox.local\"",
			func(c *Component) {
				c.Isolation.Namespaces, c.Isolation.Hostname = []string{"uts"}, "web-sandbox.local"
			}, ""},
		{"hostname without uts", "[isolation]\nnamespaces = \"mount\"\nhostname = \"web\"", nil,
			`6: isolation.hostname: needs the uts namespace; add "uts" to isolation.namespaces`},
		{"hostname invalid", "[isolation]\nhostname = \"-web_1\"", nil,
			`5: isolation.hostname: "-web_1" is not a host name: dot-separated labels of letters, digits and inner '-', at most 64 bytes`},
		{"hostname too long", "[isolation]\nhostname = \"" + strings.Repeat("a", 40) + "." + strings.Repeat("b", 24) + "\"", nil,
			`5: isolation.hostname: "` + strings.Repeat("a", 40) + "." + strings.Repeat("b", 24) + `" is not a host name: dot-separated labels of letters, digits and inner '-', at most 64 bytes`},
		{"private_tmp", "[isolation]\nnamespaces = [\"mount\"]\nprivate_tmp = true",
			func(c *Component) { c.Isolation.Namespaces, c.Isolation.PrivateTmp = []string{"mount"}, true }, ""},
		{"private_tmp false", "[isolation]\nprivate_tmp = false", func(c *Component) {}, ""},
		{"private_tmp without mount", "[isolation]\nprivate_tmp = true", nil,
			`5: isolation.private_tmp: needs the mount namespace; add "mount" to isolation.namespaces`},
		{"private_tmp string", "[isolation]\nprivate_tmp = \"yes\"", nil, "5: isolation.private_tmp: must be true or false, not a string"},

		// [checkpoint]
		{"checkpoint", "[checkpoint]\nenabled = true\npreserve_fds = \"network,files\"\nleave_running = false\n" +
			"memory_estimate = 64\nmax_age = 12", func(c *Component) {
			c.Checkpoint = Checkpoint{Enabled: true, PreserveFDs: []string{"files", "network"}, MemoryEstimateMB: 64, MaxAge: 12 * time.Hour}
		}, ""},
		{"preserve_fds array", "[checkpoint]\npreserve_fds = [\"b\", \"a\"]", func(c *Component) { c.Checkpoint.PreserveFDs = []string{"a", "b"} }, ""},
		{"preserve_fds twice", "[checkpoint]\npreserve_fds = \"a, a\"", nil, `5: checkpoint.preserve_fds: "a" is listed twice`},
		{"preserve_fds blank inside", "[checkpoint]\npreserve_fds = [\"a b\"]", nil,
			`5: checkpoint.preserve_fds: "a b" must be non-empty and contain no whitespace or comma`},
		{"max_age string", "[checkpoint]\nmax_age = \"90m\"", func(c *Component) { c.Checkpoint.MaxAge = 90 * time.Minute }, ""},
		{"max_age zero", "[checkpoint]\nmax_age = 0", nil, "5: checkpoint.max_age: must be at least 1 (hours), not 0"},
		{"max_age too long", "[checkpoint]\nmax_age = 2562048", nil, "5: checkpoint.max_age: 2562048 hours is too long"},
		{"memory_estimate negative", "[checkpoint]\nmemory_estimate = -1", nil, "5: checkpoint.memory_estimate: must be at least 0, not -1"},
		{"enabled integer", "[checkpoint]\nenabled = 1", nil, "5: checkpoint.enabled: must be true or false, not an integer"},

		// refused sections
		{"monitoring", "[monitoring]\nenabled = true", nil, "4: unknown section [monitoring] (not supported)"},
		{"security", "\n[security]", nil, "5: unknown section [security] (not supported)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := keyHead + tc.text + "\n"
			got, err := Parse("f.toml", []byte(data))
			if tc.want == nil {
				if err == nil || err.Error() != "f.toml:"+tc.err {
					t.Errorf("Parse(%q) error = %v; want f.toml:%s", data, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q) error: %v", data, err)
			}
			want := base
			tc.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Parse(%q) =\n%+v\nwant\n%+v", data, got, want)
			}
		})
	}
}

// TestAliases proves each alias means exactly what its canonical spelling
// means.
func TestAliases(t *testing.T) {
	for _, tc := range []struct{ name, alias, canonical string }{
		{"handoff in [component]", "handoff = \"checkpoint\"", "[lifecycle]\nhandoff = \"checkpoint\""},
		{"readiness_command", "[lifecycle]\nreadiness_command = \"true\"", "[lifecycle]\nreadiness_check = \"true\""},
		{"health_failures", "[lifecycle]\nhealth_check = \"c\"\nhealth_failures = 2", "[lifecycle]\nhealth_check = \"c\"\nhealth_fail_threshold = 2"},
		{"readiness selector", "[lifecycle]\nreadiness = \"file\"\nreadiness_file = \"/r\"", "[lifecycle]\nreadiness_file = \"/r\""},
		{"health selector", "[lifecycle]\nhealth = \"file\"\nhealth_file = \"/h\"", "[lifecycle]\nhealth_file = \"/h\""},
		{"namespaces as a string", "[isolation]\nnamespaces = \"mnt, pid\"", "[isolation]\nnamespaces = [\"pid\", \"mount\"]"},
		{"durations", "[lifecycle]\nrestart_window = 120", "[lifecycle]\nrestart_window = \"2m\""},
		{"max_age", "[checkpoint]\nmax_age = 2", "[checkpoint]\nmax_age = \"120m\""},
		{"sizes", "[resources]\nmemory_max = \"1G\"", "[resources]\nmemory_max = 1073741824"},
		{"cpu_max period", "[resources]\ncpu_max = \"max\"", "[resources]\ncpu_max = \"max 100000\""},
		{"cgroup", "", "[resources]\ncgroup = \"a\""},
		{"root", "", "[isolation]\nroot = \"/\""},
		{"empty lists", "args = []\n[optional]\ncapabilities = []", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Parse("alias.toml", []byte(keyHead+tc.alias+"\n"))
			if err != nil {
				t.Fatal(err)
			}
			c, err := Parse("canonical.toml", []byte(keyHead+tc.canonical+"\n"))
			if err != nil {
				t.Fatal(err)
			}
			if !Same(a, c) {
				t.Errorf("Same(%q, %q) = false\n%+v\n%+v", tc.alias, tc.canonical, a, c)
			}
		})
	}
}

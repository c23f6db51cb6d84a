// Package config loads component declarations: one TOML file per component
// in a directory (normally /etc/graph.d).
//
// # Files and errors
//
// Load reads the directory's *.toml files (hidden files and directories
// skipped) in sorted order. Each is TOML as github.com/BurntSushi/toml reads
// it: comments anywhere, multi-line arrays, inline tables and dotted keys all
// work. Any problem rejects that one file with "file:line: message", where
// line is the line of the key at fault (of the section header when a
// required key is missing) and a message about a value starts with its key,
// as in
//
//	web.toml:17: lifecycle.readiness_timeout: must be at least 1 (seconds), not 0
//
// The other files still load, so one typo never keeps the rest of the system
// down. Nothing is clamped or silently ignored: unknown sections, unknown or
// misplaced keys, values of the wrong type or out of range, and keys that
// contradict each other all reject the file. Keys are read in file order and
// the first problem is reported. A file declaring a name an earlier file
// already declared, or the name of the built-in "kernel" pseudo-component,
// is rejected too.
//
// # Value types
//
//	string    a TOML string, never with a NUL character (the kernel cannot
//	          take one in a path, a command or an argument)
//	command   a string that is not blank, run with /bin/sh -c
//	path      a string holding an absolute path
//	list      an array of strings, kept in order; [] equals leaving it out
//	set       an array of strings or one comma-separated string ("mount,uts",
//	          blanks around items ignored); stored sorted; an item listed
//	          twice is an error
//	integer   a TOML integer (not a float, not a string)
//	boolean   true or false
//	duration  an integer number of seconds (of hours for max_age, as in the
//	          reference), or a string in Go's syntax: "500ms", "2s", "1m30s",
//	          "1.5h". At least 1ms, since less is a slip that makes timers
//	          spin. Floats are refused: write "1.5s".
//	size      an integer number of bytes, or a string of digits with an
//	          optional K, M or G in either case, powers of 1024: "50M" is
//	          52428800. "max" means no limit (stored as 0). At least 4096
//	          bytes, one page: "memory_max = 256" is a forgotten "M".
//	          "64MB", "64MiB" and "1.5G" are refused: "MB" means 10⁶ to many
//	          people and 2²⁰ to the reference, so the file must say "64M".
//	signal    an upper-case name with or without "SIG": "SIGHUP" or "HUP"
//
// # Keys
//
// Defaults are applied when a key is left out, so two files that mean the
// same give equal components (see Same).
//
//	key                       type      default    rule
//
//	[component]
//	name                      string    required   letters, digits, '.', '_', '-', starting with a
//	                                               letter, digit or '_' (so neither hidden nor an
//	                                               option); at most 251 bytes (name.log is a file)
//	binary                    path      required   executed without PATH lookup
//	args                      list      none       argv[1:]; argv[0] is binary
//	type                      string    "service"  "service" or "oneshot"
//	handoff                   string    "none"     alias of [lifecycle] handoff; set one of the two
//
//	[provides], [requires], [optional]
//	capabilities              list      none       names non-empty without whitespace, each once
//
//	[lifecycle]
//	handoff                   string    "none"     "none", "fd-passing", "state-file", "checkpoint"
//	reload_signal             signal    none       HUP, INT, QUIT, USR1, USR2, ALRM, TERM, WINCH
//	readiness                 string    see below  "file", "command", "signal", "notify", "none"
//	readiness_file            path      none       selects "file"
//	readiness_check           command   none       selects "command"
//	readiness_command         command   none       alias of readiness_check
//	readiness_signal          signal    none       USR1 or USR2; selects "signal"
//	readiness_timeout         duration  30s        needs a readiness method other than "none"
//	readiness_interval        duration  5s         only with "command": time between checks
//	health                    string    see below  "command", "file", "notify", "none"
//	health_check              command   none       selects "command"
//	health_file               path      none       selects "file"
//	health_interval           duration  60s        needs a health method other than "none":
//	                                               time between the starts of two checks
//	health_timeout            duration  10s        the same; a check not done by then fails
//	health_fail_threshold     integer   3          >= 1; consecutive failures ACTIVE → DEGRADED
//	health_failures           integer   3          alias of health_fail_threshold
//	health_restart_threshold  integer   5          >= 1; consecutive failures → FAILED, restart
//	restart_max               integer   5          >= 0; starts allowed per restart_window;
//	                                               0 = never restart
//	restart_window            duration  30s
//
//	[resources]
//	cgroup                    string    the name   clean relative path below /sys/fs/cgroup/graph
//	memory_max                size      no limit   "max" = no limit
//	memory_high               size      no limit   not above memory_max (it would never act)
//	cpu_weight                integer   unset      1..10000
//	cpu_max                   string    unset      "QUOTA PERIOD" in µs: QUOTA "max" or >= 1000,
//	                                               PERIOD 1000..1000000, default 100000;
//	                                               stored with both fields, one space apart
//	io_weight                 integer   unset      1..10000
//	pids_max                  integer   no limit   >= 0, or "max"; 0 = no limit
//
//	[isolation]
//	namespaces                set       none       mount (or mnt), pid, net, uts, ipc, user
//	root                      path      "/"        stored cleaned ("/srv/x/" is "/srv/x")
//	hostname                  string    none       RFC 1123, at most 64 bytes; needs "uts"
//	private_tmp               boolean   false      true needs "mount"
//	uid_map                   list      none       "INSIDE OUTSIDE COUNT" lines; needs "user";
//	                                               none leaves the service the overflow uid
//	gid_map                   list      none       the same for group ids
//
//	[checkpoint]
//	enabled                   boolean   false
//	preserve_fds              set       none       words without whitespace or comma
//	leave_running             boolean   true
//	memory_estimate           integer   0          MB, >= 0
//	max_age                   duration  24h        a bare integer counts hours
//
// # Rules across keys
//
// The readiness method is what the readiness key says, or what the one
// method key present implies (readiness_file: "file", readiness_check:
// "command", readiness_signal: "signal"), or "none". All of them must agree:
// two method keys, or a selector that disagrees with a method key, reject
// the file. readiness = "file", "command" or "signal" needs its key;
// "notify" needs none (the service writes READY=1 to $NOTIFY_SOCKET).
// readiness_signal is limited to SIGUSR1 and SIGUSR2 because the signal goes
// to PID 1, which reloads on SIGHUP and shuts down on SIGINT and SIGTERM.
//
// The health method is settled the same way: the health key, or what
// health_check ("command") or health_file ("file") implies, or "none"; they
// must agree, and health = "command" or "file" needs its key. The other
// health keys need a method other than "none". health = "notify" needs
// readiness "notify" (or "signal"): that is how the service gets
// $NOTIFY_SOCKET and how its messages are attributed to it. What each
// method checks, and the counting, are in docs/HEALTH.md.
//
// A oneshot takes no readiness or health keys: it is ready when it exits 0,
// and health checks watch services that keep running.
//
// hostname needs "uts", private_tmp = true needs "mount", and uid_map and
// gid_map need "user" in namespaces.
// Both are errors rather than implied: a namespace the file does not name
// would change what the service sees without anyone having asked for it.
//
// # Aliases and refused keys
//
// The reference's examples use spellings its parser ignored. Those that
// express intent are accepted: readiness (the method selector),
// readiness_command (= readiness_check), health_failures (=
// health_fail_threshold), restart_max and restart_window, namespaces as an
// array or a comma-separated string, handoff in [component] as well as in
// [lifecycle], private_tmp in [isolation], and capabilities in [optional].
// Setting both spellings of one setting is an error.
//
// The rest are rejected as unknown, with a hint where one helps: the
// sections [hotswap] (transfer_fds, env_vars, shutdown_grace,
// preserve_state, pre_swap_check, post_swap_check, post_swap_commands,
// state_file), [monitoring] and [security]; [provides] sockets; [lifecycle]
// state_file; [resources] cgroup_path (use cgroup), processes_max (use
// pids_max) and files_max. The reference parser's quirks are gone too:
// unquoted strings and trailing text after a value are TOML syntax errors.
package config

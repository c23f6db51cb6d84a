// Package stage1 is the initramfs /init of the test image (the binary
// yakimg-runner, running as PID 1): it loads the kernel modules, brings lo
// up, mounts the root and checkpoint partitions, starts the sentinel that
// reports and powers off if the suites overrun their deadline, and
// switch_roots into YakirOS's graph-resolver.
package stage1

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
)

// ConfigPath is where the builder puts the Config inside the initramfs.
const ConfigPath = "etc/yakimg/stage1.json"

// Config is /etc/yakimg/stage1.json in the initramfs, written by the builder.
type Config struct {
	Modules    []string `json:"modules"`    // .ko paths inside the initramfs, in load order (from kmod.LoadOrder)
	Root       string   `json:"root"`       // e.g. "/dev/vda1" (ext4)
	Checkpoint string   `json:"checkpoint"` // e.g. "/dev/vda2" (ext4), mounted at /checkpoint in the new root; "" for none
	Init       string   `json:"init"`       // "/sbin/graph-resolver"
	DeadlineS  int      `json:"deadline_s"` // sentinel deadline in guest seconds since boot; kernel cmdline yakimg.deadline=N overrides
	Channel    string   `json:"channel"`    // "/dev/ttyS1"
}

// ParseConfig decodes a Config. Unknown keys are refused so that a typo in
// the builder fails the build, not the boot.
func ParseConfig(data []byte) (Config, error) {
	var c Config
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("stage1 config: %w", err)
	}
	return c, nil
}

// Validate reports the first setting stage 1 could not work with.
func (c Config) Validate() error {
	var errs []error
	if !strings.HasPrefix(c.Root, "/dev/") {
		errs = append(errs, fmt.Errorf("root %q is not a /dev path", c.Root))
	}
	if c.Checkpoint != "" && !strings.HasPrefix(c.Checkpoint, "/dev/") {
		errs = append(errs, fmt.Errorf("checkpoint %q is not a /dev path", c.Checkpoint))
	}
	if !path.IsAbs(c.Init) {
		errs = append(errs, fmt.Errorf("init %q is not an absolute path", c.Init))
	}
	if c.DeadlineS <= 0 {
		errs = append(errs, fmt.Errorf("deadline_s %d is not positive", c.DeadlineS))
	}
	if !strings.HasPrefix(c.Channel, "/dev/") {
		errs = append(errs, fmt.Errorf("channel %q is not a /dev path", c.Channel))
	}
	for _, m := range c.Modules {
		if m == "" {
			errs = append(errs, errors.New("empty module path"))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stage1 config: %w", err)
	}
	return nil
}

// withCmdline returns c with the yakimg.* parameters of a kernel command
// line applied; the last occurrence of a parameter wins, as in the kernel.
func withCmdline(c Config, cmdline string) (Config, error) {
	for _, param := range splitCmdline(cmdline) {
		key, value, _ := strings.Cut(param, "=")
		switch key {
		case "yakimg.root":
			c.Root = value
		case "yakimg.checkpoint":
			c.Checkpoint = value
		case "yakimg.deadline":
			n, err := strconv.Atoi(value)
			if err != nil || n <= 0 {
				return Config{}, fmt.Errorf("kernel command line: yakimg.deadline=%q is not a positive number of seconds", value)
			}
			c.DeadlineS = n
		}
	}
	return c, nil
}

// splitCmdline splits a kernel command line into parameters the way the
// kernel does: at spaces outside double quotes, with the quotes removed.
func splitCmdline(s string) []string {
	var params []string
	var cur strings.Builder
	inQuote, inParam := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote, inParam = !inQuote, true
		case !inQuote && (r == ' ' || r == '\t' || r == '\n'):
			if inParam {
				params = append(params, cur.String())
				cur.Reset()
				inParam = false
			}
		default:
			cur.WriteRune(r)
			inParam = true
		}
	}
	if inParam {
		params = append(params, cur.String())
	}
	return params
}

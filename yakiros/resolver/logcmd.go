package resolver

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"yakimg/yakiros/control"
)

const defaultLogLines = 20

var logRule = strings.Repeat("─", 48)

// logCommand answers `log <component> [lines]` with the last lines of the
// component's log. The arguments are checked on the loop; the file is read
// by a goroutine, which replies.
func (l *loop) logCommand(c *control.Call) {
	args := c.Request.Args
	if len(args) == 0 || len(args) > 2 {
		c.Reply(control.Fail("log command requires component name\nUsage: log <component_name> [lines]"))
		return
	}
	name, n := args[0], defaultLogLines
	if len(args) == 2 {
		var err error
		if n, err = strconv.Atoi(args[1]); err != nil || n <= 0 {
			c.Reply(control.Fail(fmt.Sprintf("log: number of lines %q must be a positive integer", args[1])))
			return
		}
	}
	_, known := l.byName[name]
	// Logs outlive their components, so the file of a removed one is shown
	// too; a name that is not a plain file name never leaves the log dir.
	if !known && (name == "" || strings.ContainsRune(name, '/') || strings.HasPrefix(name, ".")) {
		c.Reply(control.Fail(fmt.Sprintf("component '%s' not found", name)))
		return
	}
	path := l.logs.Path(name)
	go func() { c.Reply(logReply(name, path, n, known)) }()
}

func logReply(name, path string, n int, known bool) control.Response {
	lines, err := lastLines(path, n)
	switch {
	case errors.Is(err, fs.ErrNotExist) && !known:
		return control.Fail(fmt.Sprintf("component '%s' not found", name))
	case errors.Is(err, fs.ErrNotExist):
		return control.Fail(fmt.Sprintf("Log file for component '%s' not found at %s\n(Per-component logging may not be enabled)", name, path))
	case err != nil:
		return control.Fail(fmt.Sprintf("log for component '%s': %v", name, err))
	}
	// Right after a rotation the current file is short; the rest of the
	// lines are at the end of the previous one.
	if len(lines) < n {
		if older, err := lastLines(path+".1", n-len(lines)); err == nil {
			lines = append(older, lines...)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Recent logs for component '%s' (last %d lines):\n%s\n", name, n, logRule)
	if len(lines) == 0 {
		b.WriteString("(log file is empty)\n")
	}
	for _, line := range lines {
		b.WriteString(line + "\n")
	}
	return control.OK(b.String(), control.LogData{Component: name, Path: path, Lines: nonNil(lines)})
}

// lastLines returns the last n lines of the file at path, without their
// newlines, reading backwards from the end only as far as it must.
func lastLines(path string, n int) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	const block = 8192
	var tail []byte
	off := fi.Size()
	// A line is whole once the newline before it is in tail (or the file
	// starts there); the file's own last newline ends the last line.
	for off > 0 && bytes.Count(bytes.TrimSuffix(tail, []byte("\n")), []byte("\n")) < n {
		size := min(block, off)
		off -= size
		chunk := make([]byte, size, int(size)+len(tail))
		if _, err := f.ReadAt(chunk, off); err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		tail = append(chunk, tail...)
	}
	text := strings.TrimSuffix(string(tail), "\n")
	if text == "" && off == 0 {
		return nil, nil
	}
	lines := strings.Split(text, "\n")
	if off > 0 {
		lines = lines[1:] // the first is only the end of a line
	}
	return lines[max(len(lines)-n, 0):], nil
}

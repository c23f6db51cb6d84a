package health

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// maxFileLine bounds what is read of a health file: its first line.
const maxFileLine = 4096

// readFile gives the verdict of the health file. The read runs on a
// goroutine of its own, so that a file system that hangs fails the check
// at the timeout; until that read returns, later checks fail at once
// instead of leaving one more goroutine stuck each.
func (w *watch) readFile(ctx context.Context) (bool, string) {
	if w.reading != nil {
		select {
		case <-w.reading:
			w.reading = nil
		default:
			return false, fmt.Sprintf("an earlier read of %s has still not returned", w.cfg.File)
		}
	}
	var (
		ok     bool
		reason string
		done   = make(chan struct{})
	)
	go func() {
		defer close(done)
		ok, reason = fileVerdict(w.cfg.File)
	}()
	select {
	case <-done:
		return ok, reason
	case <-ctx.Done():
		w.reading = done
		return false, fmt.Sprintf("reading %s timed out after %v", w.cfg.File, w.cfg.Timeout)
	}
}

// fileVerdict reads the first line of the health file at path: none (an
// empty file) or "ok" passes, "fail" or "fail:<reason>" fails, and so does
// anything else.
func fileVerdict(path string) (bool, string) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, path + " does not exist"
	}
	if err != nil {
		return false, err.Error()
	}
	defer f.Close()
	line, err := bufio.NewReader(io.LimitReader(f, maxFileLine)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return false, err.Error() // names the file
	}
	line = strings.TrimSpace(line)
	if line == "" {
		return true, ""
	}
	ok, detail, valid := verdict(line)
	switch {
	case !valid:
		return false, fmt.Sprintf("%s says %q; want ok or fail[:reason]", path, line)
	case !ok && detail == "":
		return false, path + " says fail"
	}
	return ok, detail
}

// verdict reads "ok", "fail" or "fail:<detail>"; valid is false for
// anything else.
func verdict(s string) (ok bool, detail string, valid bool) {
	if s == "ok" {
		return true, "", true
	}
	rest, found := strings.CutPrefix(s, "fail")
	if !found {
		return false, "", false
	}
	if rest == "" {
		return false, "", true
	}
	detail, found = strings.CutPrefix(rest, ":")
	return false, strings.TrimSpace(detail), found
}

package suites

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// mount is one line of /proc/<pid>/mountinfo (proc(5)).
type mount struct {
	Dev          string // "major:minor" of the filesystem
	Root         string // the filesystem's directory mounted here
	Point        string // mount point, relative to the process's root
	Options      []string
	FSType       string
	Source       string
	SuperOptions []string
}

// parseMountinfo decodes mountinfo lines:
// "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue".
func parseMountinfo(r io.Reader) ([]mount, error) {
	var ms []mount
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		sep := slices.Index(f, "-")
		if sep < 6 || len(f) < sep+4 {
			return nil, fmt.Errorf("mountinfo line %d: malformed: %q", n, sc.Text())
		}
		m := mount{
			Dev:          f[2],
			Root:         unescapeMount(f[3]),
			Point:        unescapeMount(f[4]),
			Options:      strings.Split(f[5], ","),
			FSType:       f[sep+1],
			Source:       unescapeMount(f[sep+2]),
			SuperOptions: strings.Split(f[sep+3], ","),
		}
		ms = append(ms, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	return ms, nil
}

// unescapeMount undoes the kernel's octal escapes (\040 for a space, ...).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// findMount returns the mount visible at point: the last one mounted there.
func findMount(ms []mount, point string) (mount, bool) {
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].Point == point {
			return ms[i], true
		}
	}
	return mount{}, false
}

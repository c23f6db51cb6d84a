package cli

import (
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"yakimg/rootfs"
)

// isTerminal reports whether w is a terminal, where a progress bar that
// redraws itself helps; in a log file it would be noise.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// fetchProgress shows the progress of a fetch: on a terminal one bar that
// redraws itself (packages and megabytes done, what is downloading), plus
// a line for anything unusual; elsewhere one plain line per event.
type fetchProgress struct {
	w          io.Writer
	bar        bool
	total      int
	totalBytes int64
	done       int
	doneBytes  int64
	inFlight   map[string]bool // names being downloaded
	drawn      bool
}

func newFetchProgress(w io.Writer, pkgs []rootfs.LockedPackage) *fetchProgress {
	fp := &fetchProgress{w: w, bar: isTerminal(w), total: len(pkgs), inFlight: map[string]bool{}}
	for _, p := range pkgs {
		fp.totalBytes += p.Size
	}
	return fp
}

// event is a rootfs.Progress.
func (fp *fetchProgress) event(e rootfs.FetchEvent) {
	switch e.State {
	case rootfs.Cached, rootfs.Fetched:
		fp.done++
		fp.doneBytes += e.Package.Size
	case rootfs.Downloading:
		fp.inFlight[e.Package.Name] = true
	}
	if e.State == rootfs.Fetched || e.State == rootfs.Failed {
		delete(fp.inFlight, e.Package.Name)
	}
	if !fp.bar {
		fp.line(e)
		return
	}
	if e.Note != "" || e.State == rootfs.Failed {
		fp.clear()
		fp.line(e)
	}
	fp.draw()
}

func (fp *fetchProgress) line(e rootfs.FetchEvent) {
	msg := e.State.String()
	switch {
	case e.State == rootfs.Failed:
		msg = "failed: " + e.Err.Error()
	case e.State == rootfs.Fetched:
		msg = fmt.Sprintf("fetched (%d bytes, sha256 %.12s)", e.Package.Size, e.Package.SHA256)
	case e.Note != "":
		msg += ": " + e.Note
	}
	fmt.Fprintf(fp.w, "yakimg fetch: %s: %s\n", e.Package, msg)
}

const barWidth = 30

func (fp *fetchProgress) draw() {
	filled := barWidth
	if fp.totalBytes > 0 {
		filled = int(int64(barWidth) * fp.doneBytes / fp.totalBytes)
	}
	status := ""
	if len(fp.inFlight) > 0 {
		status = "  " + strings.Join(slices.Sorted(maps.Keys(fp.inFlight)), " ")
	}
	fmt.Fprintf(fp.w, "\r\033[K[%s%s] %d/%d packages  %.1f/%.1f MB%s",
		strings.Repeat("#", filled), strings.Repeat(".", barWidth-filled),
		fp.done, fp.total, float64(fp.doneBytes)/1e6, float64(fp.totalBytes)/1e6, status)
	fp.drawn = true
}

func (fp *fetchProgress) clear() {
	if fp.drawn {
		fmt.Fprint(fp.w, "\r\033[K")
		fp.drawn = false
	}
}

// finish ends the bar's line so that what follows starts on its own.
func (fp *fetchProgress) finish() {
	if fp.drawn {
		fmt.Fprintln(fp.w)
		fp.drawn = false
	}
}

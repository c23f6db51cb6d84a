package resolver

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// logger writes graph-resolver's own log: one line per message in the
// layout "[SSSSS.mmm] graph-resolver LEVEL message" (seconds are epoch
// seconds modulo 100000). As PID 1 it writes to /dev/kmsg, where each write
// is one kernel log record.
type logger struct {
	mu sync.Mutex
	w  io.Writer
}

// maxLine is the kernel's limit for one /dev/kmsg record, less some room.
const maxLine = 1000

func (l *logger) printf(level, format string, args ...any) {
	now := time.Now()
	line := fmt.Sprintf("[%5d.%03d] graph-resolver %s %s",
		now.Unix()%100000, now.Nanosecond()/int(time.Millisecond), level, fmt.Sprintf(format, args...))
	if len(line) > maxLine {
		line = line[:maxLine]
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	io.WriteString(l.w, line+"\n")
}

func (l *logger) Infof(format string, args ...any)  { l.printf("INFO", format, args...) }
func (l *logger) Warnf(format string, args ...any)  { l.printf("WARN", format, args...) }
func (l *logger) Errorf(format string, args ...any) { l.printf("ERROR", format, args...) }

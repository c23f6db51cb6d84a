package vm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"yakimg/suites/report"
)

const (
	// panicGrace is how long QEMU may take to exit after a kernel panic;
	// with panic=-1 and -no-reboot it normally exits at once.
	panicGrace = 5 * time.Second
	// doneGrace is how long a guest that delivered its report may take to
	// power off before the host stops waiting.
	doneGrace = 30 * time.Second
	// drainTime bounds reading what is left in the serial sockets once QEMU
	// has exited.
	drainTime = 2 * time.Second
	// maxFrameLine bounds one report-channel line.
	maxFrameLine = 64 << 20
)

// Run boots c and classifies the result. Its error is only for usage
// problems (missing kernel, bad settings); everything that goes wrong on the
// host or in the guest is an Outcome.
func Run(ctx context.Context, c Config) (*Outcome, error) {
	c, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	var log *os.File
	var logw io.Writer // stays a nil interface without a log
	if c.ConsoleLog != "" {
		if log, err = os.Create(c.ConsoleLog); err != nil {
			return nil, fmt.Errorf("console log: %w", err)
		}
		defer log.Close()
		logw = log
	}
	accel := chooseAccel(ctx, c)
	start := time.Now()
	opt := accelOption(c, accel)
	b := boot(ctx, c, opt, logw)
	o := &Outcome{
		Accel:       accel,
		TCGThreads:  tcgThreads(opt),
		Duration:    time.Since(start),
		Transcript:  b.obs.transcript,
		ConsoleTail: b.console.tail,
		QEMUOutput:  b.qemuOutput,
	}
	o.Class, o.Detail = classify(b.obs)
	o.ExitCode = classExit[o.Class]
	if r := o.Transcript.Report; r != nil {
		// Only the host knows which accelerator ran (DESIGN §5).
		r.VMConfig.Accel, r.VMConfig.TCGThreads = accel, o.TCGThreads
	}
	if log != nil {
		if err := log.Close(); err != nil && b.console.logErr == nil {
			b.console.logErr = err
		}
		if b.console.logErr != nil {
			fmt.Fprintf(c.Stderr, "vm: console log %s is incomplete: %v\n", c.ConsoleLog, b.console.logErr)
		}
	}
	return o, nil
}

// booted is what one QEMU run left behind.
type booted struct {
	obs        observation
	console    *consoleSink
	qemuOutput string
	guestState string // the vCPUs' registers and stacks at a timeout
	duration   time.Duration
}

// boot runs QEMU once, captures both serial ports as they arrive and kills
// QEMU when the timeout passes, the context ends, or the guest is stuck after
// a panic or after its report.
// accel is the value of QEMU's -accel option.
func boot(ctx context.Context, c Config, accel string, log io.Writer) booted {
	start := time.Now()
	panics := make(chan string, 1)
	dones := make(chan struct{}, 1)
	b := booted{
		obs:     observation{timeout: c.Timeout, exitCode: -1, transcript: &report.Transcript{}},
		console: &consoleSink{log: log, onPanic: func(l string) { panics <- l }},
	}

	dir, err := os.MkdirTemp("", "yakimg-vm-")
	if err != nil {
		b.obs.startErr = fmt.Errorf("socket directory: %w", err)
		return b
	}
	defer os.RemoveAll(dir)
	con, err := listen(filepath.Join(dir, "console.sock"))
	if err != nil {
		b.obs.startErr = err
		return b
	}
	rep, err := listen(filepath.Join(dir, "report.sock"))
	if err != nil {
		con.ln.Close()
		b.obs.startErr = err
		return b
	}

	var dec report.Decoder
	go con.serve(func(r io.Reader) {
		io.Copy(b.console, r)
		b.console.flush()
	})
	go rep.serve(func(r io.Reader) { readFrames(r, &dec, c.OnFrame, dones) })

	out := &tailBuffer{max: 4 << 10}
	monitor := filepath.Join(dir, "monitor.sock")
	cmd := exec.Command(c.QEMU, append(c.args(accel, con.path, rep.path), monitorArgs(monitor)...)...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = drainTime
	fmt.Fprintf(c.Stderr, "vm: %s\n", strings.Join(cmd.Args, " "))
	if err := cmd.Start(); err != nil {
		con.finish()
		rep.finish()
		b.obs.startErr = err
		b.obs.missing = errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist)
		return b
	}

	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	kill := func(reason string) {
		if b.obs.killed == "" {
			b.obs.killed = reason
			cmd.Process.Kill()
		}
	}
	timeout := time.NewTimer(c.Timeout)
	defer timeout.Stop()
	cancelled := ctx.Done()
	var grace <-chan time.Time
	var graceReason string
wait:
	for {
		select {
		case <-exited:
			break wait
		case <-timeout.C:
			b.guestState = askGuestState(c, monitor)
			kill(killTimeout)
		case <-cancelled:
			cancelled = nil
			kill(killInterrupt)
		case l := <-panics:
			fmt.Fprintf(c.Stderr, "vm: guest kernel panic: %s\n", l)
			grace, graceReason = time.After(panicGrace), killPanic
		case <-dones:
			if grace == nil {
				grace, graceReason = time.After(doneGrace), killDone
			}
		case <-grace:
			grace = nil
			if graceReason == killDone {
				fmt.Fprintf(c.Stderr, "vm: the report is in but the guest did not power off within %v; stopping QEMU\n", doneGrace)
			}
			kill(graceReason)
		}
	}
	con.finish()
	rep.finish()
	if b.guestState != "" && log != nil && b.console.logErr == nil {
		// Straight to the log: the dump is not guest output and must not
		// push the console's last lines out of the summary.
		_, b.console.logErr = fmt.Fprintf(log, "\n--- vm: guest state when the timeout struck (QEMU monitor) ---\n%s", b.guestState)
	}

	st := cmd.ProcessState
	b.obs.exitCode = st.ExitCode()
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		b.obs.signal = ws.Signal().String()
	}
	b.obs.panicLine = b.console.panic
	b.obs.transcript = &dec.T
	b.qemuOutput = out.String()
	b.obs.qemuLastErr = lastLine(b.qemuOutput)
	b.duration = time.Since(start)
	return b
}

// readFrames feeds report-channel lines to dec as they arrive.
func readFrames(r io.Reader, dec *report.Decoder, onFrame func(string, report.Frame), dones chan<- struct{}) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxFrameLine)
	for sc.Scan() {
		kind := dec.Feed(sc.Bytes())
		if kind == "" {
			continue
		}
		if onFrame != nil {
			if f, err := report.ParseLine(sc.Bytes()); err == nil {
				onFrame(kind, f)
			}
		}
		if kind == report.KindDone {
			select {
			case dones <- struct{}{}:
			default:
			}
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		dec.T.Corrupt = append(dec.T.Corrupt, fmt.Sprintf("read report channel: %v", err))
		// Keep reading so that the guest's serial port never stalls.
		io.Copy(io.Discard, r)
	}
}

// serialSocket is a unix socket QEMU connects one serial port to.
type serialSocket struct {
	path string
	ln   net.Listener
	done chan struct{} // closed when serve returns

	mu        sync.Mutex
	conn      net.Conn
	finishing bool
}

func listen(path string) (*serialSocket, error) {
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("serial socket: %w", err)
	}
	return &serialSocket{path: path, ln: ln, done: make(chan struct{})}, nil
}

// serve accepts QEMU's one connection and hands it to handle.
func (s *serialSocket) serve(handle func(io.Reader)) {
	defer close(s.done)
	conn, err := s.ln.Accept()
	s.ln.Close()
	if err != nil {
		return // QEMU never connected; finish closed the listener
	}
	defer conn.Close()
	s.mu.Lock()
	s.conn = conn
	if s.finishing {
		conn.SetReadDeadline(time.Now().Add(drainTime))
	}
	s.mu.Unlock()
	handle(conn)
}

// finish is called once QEMU has exited: it reads what is left, for at most
// drainTime, and waits for serve to return.
func (s *serialSocket) finish() {
	s.ln.Close()
	s.mu.Lock()
	s.finishing = true
	if s.conn != nil {
		s.conn.SetReadDeadline(time.Now().Add(drainTime))
	}
	s.mu.Unlock()
	<-s.done
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.b) }

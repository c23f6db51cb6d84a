package handoff

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// wait bounds how long a test waits for something that should happen soon.
const wait = 20 * time.Second

// oldInstance runs Serve's loop in this process on a fresh upgrade socket
// and returns the supervisor's end and Serve's eventual error.
func oldInstance(t *testing.T, prepare func(*Request) (*Bundle, error)) (*Control, <-chan error) {
	t.Helper()
	c, svc, err := NewControl()
	if err != nil {
		t.Fatal(err)
	}
	l, err := fileLink(svc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- serveControl(ctx, l, prepare)
		l.close()
	}()
	t.Cleanup(func() { cancel(); c.Close() })
	return c, errc
}

// newInstance takes the new instance's end of u as Inherited would.
func newInstance(t *testing.T, u *Upgrade) (*Set, error) {
	t.Helper()
	var dup int
	err := withFD(u.New, func(fd int) (err error) {
		dup, err = unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	l, err := fileLink(os.NewFile(uintptr(dup), "new"))
	if err != nil {
		t.Fatal(err)
	}
	// So that a broken old side fails the test instead of hanging it.
	l.c.SetDeadline(time.Now().Add(wait))
	return receive(l)
}

// within returns the next value of c, failing the test if none comes soon.
func within[T any](t *testing.T, c <-chan T) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(wait):
		t.Fatal("gave up waiting")
	}
	panic("unreachable")
}

func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

// identity is what makes a file the same file.
func identity(t *testing.T, f *os.File) [2]uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := withFD(f, func(fd int) error { return unix.Fstat(fd, &st) }); err != nil {
		t.Fatal(err)
	}
	return [2]uint64{st.Dev, st.Ino}
}

func TestHandOver300Files(t *testing.T) {
	dir := t.TempDir()
	var files []File
	var ids [][2]uint64
	for i := range 300 {
		f, err := os.Create(filepath.Join(dir, fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		if _, err := f.Write(bytes.Repeat([]byte{'x'}, i)); err != nil {
			t.Fatal(err)
		}
		files = append(files, File{Name: fmt.Sprintf("file-%03d", i), File: f})
		ids = append(ids, identity(t, f))
	}
	ctl, served := oldInstance(t, func(*Request) (*Bundle, error) {
		return &Bundle{Files: files}, nil
	})
	u, err := ctl.Upgrade(DefaultTimeout)
	if err != nil {
		t.Fatal(err)
	}
	set, err := newInstance(t, u)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range files {
		got, err := set.File(want.Name)
		if err != nil {
			t.Fatal(err)
		}
		off, err := got.Seek(0, io.SeekCurrent)
		if err != nil {
			t.Fatal(err)
		}
		if id := identity(t, got); id != ids[i] || off != int64(i) {
			t.Errorf("File(%q) is file %v at offset %d; want the old instance's file %v at offset %d", want.Name, id, off, ids[i], i)
		}
		got.Close()
	}
	if err := set.Ack(); err != nil {
		t.Fatal(err)
	}
	res, err := u.Wait(waitCtx(t))
	if err != nil || res.FDs != 300 || res.StateBytes != 0 {
		t.Errorf("Wait() = %+v, %v; want 300 descriptors", res, err)
	}
	if err := within(t, served); err != nil {
		t.Errorf("Serve() = %v; want nil after a handoff", err)
	}
	// Serve released the Bundle: the old instance's copies are closed.
	if _, err := files[0].File.Stat(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("old instance's file after the handoff: Stat() error %v; want closed", err)
	}
}

func TestFDsBatchedBySCMMaxFD(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	b := &Bundle{}
	for i := range 300 {
		b.Files = append(b.Files, File{Name: fmt.Sprintf("pipe-%d", i), File: r})
	}
	out, err := collect(b)
	if err != nil {
		t.Fatal(err)
	}
	defer out.close()
	a, z := links(t)
	sent := make(chan error, 1)
	go func() {
		sent <- out.send(a, nil)
		a.c.CloseWrite()
	}()
	var sizes []int
	for {
		msg, files, err := z.recv()
		if err != nil {
			t.Fatalf("recv: %v (send: %v)", err, within(t, sent))
		}
		closeFiles(files)
		if batch, ok := msg.(fdBatch); ok {
			if len(batch) != len(files) {
				t.Fatalf("FDS record lists %d, carries %d descriptors", len(batch), len(files))
			}
			sizes = append(sizes, len(files))
		}
		if _, ok := msg.(done); ok {
			break
		}
	}
	if fmt.Sprint(sizes) != "[253 47]" {
		t.Errorf("descriptors per FDS record = %v; want [253 47]", sizes)
	}
}

func links(t *testing.T) (*link, *link) {
	t.Helper()
	la, lb := linkPair(t)
	t.Cleanup(func() { la.close(); lb.close() })
	return la, lb
}

// linkPair is links without the cleanup: the caller closes both.
func linkPair(t *testing.T) (*link, *link) {
	t.Helper()
	a, b, err := seqpacketPair("test")
	if err != nil {
		t.Fatal(err)
	}
	la, err := fileLink(a)
	if err != nil {
		t.Fatal(err)
	}
	lb, err := fileLink(b)
	if err != nil {
		t.Fatal(err)
	}
	return la, lb
}

func TestHandOverState1MiB(t *testing.T) {
	state := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{1}).Read(state)
	ctl, served := oldInstance(t, func(*Request) (*Bundle, error) {
		return &Bundle{State: state}, nil
	})
	u, err := ctl.Upgrade(DefaultTimeout)
	if err != nil {
		t.Fatal(err)
	}
	set, err := newInstance(t, u)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(set.State(), state) {
		t.Errorf("State() differs from the 1 MiB sent (got %d bytes)", len(set.State()))
	}
	if err := set.Ack(); err != nil {
		t.Fatal(err)
	}
	if res, err := u.Wait(waitCtx(t)); err != nil || res.StateBytes != 1<<20 {
		t.Errorf("Wait() = %+v, %v; want %d state bytes", res, err, 1<<20)
	}
	within(t, served)
}

func TestFileKeepsOffset(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal")
	if err := os.WriteFile(path, []byte("first second "), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 6)
	if _, err := io.ReadFull(f, head); err != nil {
		t.Fatal(err)
	}
	ctl, served := oldInstance(t, func(*Request) (*Bundle, error) {
		return &Bundle{Files: []File{{Name: "journal", File: f}}}, nil
	})
	u, err := ctl.Upgrade(DefaultTimeout)
	if err != nil {
		t.Fatal(err)
	}
	set, err := newInstance(t, u)
	if err != nil {
		t.Fatal(err)
	}
	got, err := set.File("journal")
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	if err := set.Ack(); err != nil {
		t.Fatal(err)
	}
	within(t, served)
	rest, err := io.ReadAll(got)
	if err != nil {
		t.Fatal(err)
	}
	if string(rest) != "second " {
		t.Errorf("new instance reads %q; want %q (where the old one stopped)", rest, "second ")
	}
	if _, err := got.WriteString("third"); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); string(data) != "first second third" {
		t.Errorf("file = %q; want %q", data, "first second third")
	}
}

func TestHandOverTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	ctl, served := oldInstance(t, func(*Request) (*Bundle, error) {
		return &Bundle{Listeners: []Listener{{"tcp", ln}}, Conns: []Conn{{"c1", server}}}, nil
	})
	// Bytes the old instance never read move with the connection.
	if _, err := client.Write([]byte("unread")); err != nil {
		t.Fatal(err)
	}
	u, err := ctl.Upgrade(DefaultTimeout)
	if err != nil {
		t.Fatal(err)
	}
	set, err := newInstance(t, u)
	if err != nil {
		t.Fatal(err)
	}
	nl, err := set.Listener("tcp")
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	conns, err := set.Conns()
	if err != nil || len(conns) != 1 || conns[0].Name != "c1" {
		t.Fatalf("Conns() = %v, %v; want c1", conns, err)
	}
	defer conns[0].Conn.Close()
	if err := set.Ack(); err != nil {
		t.Fatal(err)
	}
	if err := within(t, served); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 6)
	if _, err := io.ReadFull(conns[0].Conn, buf); err != nil || string(buf) != "unread" {
		t.Errorf("new instance reads %q, %v; want %q", buf, err, "unread")
	}
	if _, err := conns[0].Conn.Write([]byte("ok")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(client, buf[:2]); err != nil || string(buf[:2]) != "ok" {
		t.Errorf("client reads %q, %v; want %q", buf[:2], err, "ok")
	}
	// The listener closed by the old instance still accepts in the new one.
	c2, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	a, err := nl.Accept()
	if err != nil {
		t.Fatalf("adopted listener: Accept() error %v", err)
	}
	a.Close()
}

func TestUnixListenerSocketFileSurvives(t *testing.T) {
	path := filepath.Join(t.TempDir(), "api.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ctl, served := oldInstance(t, func(*Request) (*Bundle, error) {
		return &Bundle{Listeners: []Listener{{"api", ln}}}, nil
	})
	u, err := ctl.Upgrade(DefaultTimeout)
	if err != nil {
		t.Fatal(err)
	}
	set, err := newInstance(t, u)
	if err != nil {
		t.Fatal(err)
	}
	nl, err := set.Listener("api")
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	if err := set.Ack(); err != nil {
		t.Fatal(err)
	}
	within(t, served)
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial %s after the old instance closed its listener: %v", path, err)
	}
	c.Close()
}

func TestPrepareDeclines(t *testing.T) {
	ctl, _ := oldInstance(t, func(*Request) (*Bundle, error) {
		return nil, errors.New("busy compacting")
	})
	u, err := ctl.Upgrade(DefaultTimeout)
	if err != nil {
		t.Fatal(err)
	}
	_, err = newInstance(t, u)
	if err == nil || !strings.Contains(err.Error(), "busy compacting") {
		t.Errorf("new instance: receive() error %v; want the old instance's reason", err)
	}
	_, err = u.Wait(waitCtx(t))
	var failed *FailedError
	if !errors.As(err, &failed) || !strings.Contains(failed.Reason, "busy compacting") {
		t.Errorf("Wait() error %v; want FailedError naming the reason", err)
	}
}

func TestNewInstanceAborts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	resumed := make(chan error, 1)
	ctl, _ := oldInstance(t, func(*Request) (*Bundle, error) {
		return &Bundle{Listeners: []Listener{{"tcp", ln}}, State: []byte("v9"), Resume: func(err error) { resumed <- err }}, nil
	})
	u, err := ctl.Upgrade(DefaultTimeout)
	if err != nil {
		t.Fatal(err)
	}
	set, err := newInstance(t, u)
	if err != nil {
		t.Fatal(err)
	}
	set.Abort(errors.New("state format v9 unknown"))
	if err := within(t, resumed); err == nil || !strings.Contains(err.Error(), "state format v9 unknown") {
		t.Errorf("Resume(%v); want the new instance's reason", err)
	}
	var failed *FailedError
	if _, err := u.Wait(waitCtx(t)); !errors.As(err, &failed) {
		t.Errorf("Wait() error %v; want FailedError", err)
	}
	// The old instance still has its listener.
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a, err := ln.Accept()
	if err != nil {
		t.Fatalf("old listener after a failed handoff: %v", err)
	}
	a.Close()
}

func TestAckTwice(t *testing.T) {
	ctl, _ := oldInstance(t, func(*Request) (*Bundle, error) { return &Bundle{}, nil })
	u, err := ctl.Upgrade(DefaultTimeout)
	if err != nil {
		t.Fatal(err)
	}
	set, err := newInstance(t, u)
	if err != nil {
		t.Fatal(err)
	}
	if err := set.Ack(); err != nil {
		t.Fatal(err)
	}
	if err := set.Ack(); !errors.Is(err, errFinished) {
		t.Errorf("second Ack() = %v; want %v", err, errFinished)
	}
}

func TestUnknownNames(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctl, _ := oldInstance(t, func(*Request) (*Bundle, error) {
		return &Bundle{Listeners: []Listener{{"http", ln}}}, nil
	})
	u, err := ctl.Upgrade(DefaultTimeout)
	if err != nil {
		t.Fatal(err)
	}
	set, err := newInstance(t, u)
	if err != nil {
		t.Fatal(err)
	}
	defer set.Abort(nil)
	if _, err := set.Listener("https"); err == nil || !strings.Contains(err.Error(), `no listener "https" was handed over (there are: "http")`) {
		t.Errorf("Listener(https) error %v; want one listing the names handed over", err)
	}
	if _, err := set.File("http"); err == nil {
		t.Error("File(http) of a listener succeeded; want an error")
	}
	nl, err := set.Listener("http")
	if err != nil {
		t.Fatal(err)
	}
	nl.Close()
	if _, err := set.Listener("http"); err == nil || !strings.Contains(err.Error(), "already taken") {
		t.Errorf("second Listener(http) error %v; want already taken", err)
	}
}

func TestBadBundleResumes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, tc := range []struct {
		name string
		b    *Bundle
		want string
	}{
		{"duplicate name", &Bundle{Listeners: []Listener{{"x", ln}}, Conns: []Conn{{"x", nil}}}, `name "x": used twice`},
		{"empty name", &Bundle{Listeners: []Listener{{"", ln}}}, "want 1 to 255 bytes"},
		{"no descriptor", &Bundle{Conns: []Conn{{"pipe", fakeConn{}}}}, "has no file descriptor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resumed := make(chan error, 1)
			tc.b.Resume = func(err error) { resumed <- err }
			ctl, _ := oldInstance(t, func(*Request) (*Bundle, error) { return tc.b, nil })
			u, err := ctl.Upgrade(DefaultTimeout)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := newInstance(t, u); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("new instance: error %v; want %q", err, tc.want)
			}
			if err := within(t, resumed); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Resume(%v); want %q", err, tc.want)
			}
		})
	}
}

// fakeConn is a net.Conn without a descriptor.
type fakeConn struct{ net.Conn }

func TestNotConfigured(t *testing.T) {
	t.Setenv(EnvHandoffFD, "")
	os.Unsetenv(EnvHandoffFD)
	t.Setenv(EnvUpgradeFD, "")
	os.Unsetenv(EnvUpgradeFD)
	if set, err := Inherited(); set != nil || err != nil {
		t.Errorf("Inherited() = %v, %v; want nil, nil when started normally", set, err)
	}
	if err := Serve(context.Background(), nil); !errors.Is(err, ErrNotConfigured) {
		t.Errorf("Serve() = %v; want ErrNotConfigured", err)
	}
}

func TestBadEnvironment(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "plain"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, tc := range []struct{ value, want string }{
		{"three", `want a descriptor number of 3 or more`},
		{"1", `want a descriptor number of 3 or more`},
		{"999", `not a socket`},
		{fmt.Sprint(f.Fd()), `not a socket`},
	} {
		t.Setenv(EnvHandoffFD, tc.value)
		if set, err := Inherited(); set != nil || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Inherited() with %s=%s = %v, %v; want error %q", EnvHandoffFD, tc.value, set, err, tc.want)
		}
		if _, ok := os.LookupEnv(EnvHandoffFD); ok {
			t.Errorf("%s still set after Inherited()", EnvHandoffFD)
		}
	}
	// A stream socket is a socket, but not the kind the protocol needs.
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	t.Setenv(EnvUpgradeFD, fmt.Sprint(fds[0]))
	if err := Serve(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "not an AF_UNIX SOCK_SEQPACKET socket") {
		t.Errorf("Serve() on a stream socket = %v; want a clear refusal", err)
	}
}

func TestServeEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	c, svc, err := NewControl()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l, err := fileLink(svc)
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	errc := make(chan error, 1)
	go func() { errc <- serveControl(ctx, l, nil) }()
	cancel()
	if err := within(t, errc); !errors.Is(err, context.Canceled) {
		t.Errorf("serveControl after cancel = %v; want context.Canceled", err)
	}
}

func TestWaitTimesOutOnSilentInstance(t *testing.T) {
	c, svc, err := NewControl()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	defer svc.Close() // held open, never read: a service that ignores the protocol
	u, err := c.Upgrade(time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Wait(waitCtx(t)); !errors.Is(err, ErrTimeout) {
		t.Errorf("Wait() = %v; want ErrTimeout", err)
	}
}

func TestWaitSeesInstanceExit(t *testing.T) {
	c, svc, err := NewControl()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	u, err := c.Upgrade(DefaultTimeout)
	if err != nil {
		t.Fatal(err)
	}
	svc.Close()
	if _, err := u.Wait(waitCtx(t)); err == nil || !strings.Contains(err.Error(), "closed its upgrade socket") {
		t.Errorf("Wait() = %v; want the old instance's exit reported", err)
	}
	if _, err := c.Upgrade(DefaultTimeout); err == nil || !strings.Contains(err.Error(), "closed its upgrade socket") {
		t.Errorf("Upgrade() to an exited instance = %v; want a clear error", err)
	}
}

package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"yakimg/testbins/internal/testbin"
	"yakimg/yakiros/handoff"
)

// download is one file being read by a client.
type download struct {
	version string
	size    int64
	digest  string // hex SHA-256 the server announced
	read    int64
	h       hash.Hash
}

// fileClient is a client of the file server, reading at the pace the test
// sets.
type fileClient struct {
	conn *net.TCPConn
	r    *bufio.Reader
}

func dialFiles(t *testing.T, addr string) *fileClient {
	t.Helper()
	conn := testbin.Dial(t, addr).(*net.TCPConn)
	// A small receive buffer, so that the server cannot push a whole file
	// into the socket: it is still sending when the client stops reading.
	if err := conn.SetReadBuffer(64 << 10); err != nil {
		t.Fatal(err)
	}
	return &fileClient{conn: conn, r: bufio.NewReaderSize(conn, 64<<10)}
}

// ask sends one request and reads the header line of the answer.
func (c *fileClient) ask(t *testing.T, line string) string {
	t.Helper()
	c.conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := fmt.Fprintf(c.conn, "%s\n", line); err != nil {
		t.Fatal(err)
	}
	reply, err := c.r.ReadString('\n')
	if err != nil {
		t.Fatalf("%q: reply %q, %v", line, reply, err)
	}
	return strings.TrimSuffix(reply, "\n")
}

// get starts a download of name.
func (c *fileClient) get(t *testing.T, name string) *download {
	t.Helper()
	reply := c.ask(t, "GET "+name)
	f := strings.Fields(reply)
	if len(f) != 4 || f[1] != "OK" || len(f[3]) != 64 {
		t.Fatalf("GET %s: %q; want \"<version> OK <size> <sha256>\"", name, reply)
	}
	size, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		t.Fatalf("GET %s: %q: %v", name, reply, err)
	}
	return &download{version: f[0], size: size, digest: f[3], h: sha256.New()}
}

// readUpTo reads the download's bytes until n of them have been read.
func (c *fileClient) readUpTo(t *testing.T, d *download, n int64) {
	t.Helper()
	c.conn.SetDeadline(time.Now().Add(20 * time.Second))
	k, err := io.CopyN(d.h, c.r, n-d.read)
	d.read += k
	if err != nil {
		t.Fatalf("after %d of %d bytes: %v", d.read, d.size, err)
	}
}

// finish reads the rest and checks the bytes against the digest.
func (c *fileClient) finish(t *testing.T, d *download) {
	t.Helper()
	c.readUpTo(t, d, d.size)
	if got := hex.EncodeToString(d.h.Sum(nil)); got != d.digest {
		t.Errorf("%d bytes with SHA-256 %s; the server announced %s", d.size, got, d.digest)
	}
}

func fileDigest(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func TestServesFiles(t *testing.T) {
	bin := testbin.Build(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "small.txt"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	addr, _, out := testbin.Start(t, bin, nil, "--dir", dir)
	c := dialFiles(t, addr)
	defer c.conn.Close()

	big := filepath.Join(dir, bigName)
	d := c.get(t, bigName)
	if d.version != "v1" || d.size != 8<<20 || d.digest != fileDigest(t, big) {
		t.Errorf("GET %s: %s, %d bytes, %s; want v1, 8 MiB, the digest of %s", bigName, d.version, d.size, d.digest, big)
	}
	c.finish(t, d)
	for _, tc := range []struct{ line, want string }{
		{"GET small.txt", "v1 OK 6 " + fileDigest(t, filepath.Join(dir, "small.txt"))},
		{"GET nothing", "v1 ERR nothing: no such file"},
		{"GET sub", "v1 ERR sub is not a regular file"},
		{"GET ../etc/passwd", "v1 ERR openat ../etc/passwd: path escapes from parent"},
		{"GET " + big, "v1 ERR openat " + big + ": path escapes from parent"},
		{"PUT x", "v1 ERR usage: GET <name>"},
		{"GET ", "v1 ERR usage: GET <name>"},
	} {
		if got := c.ask(t, tc.line); got != tc.want {
			t.Errorf("%q: %q; want %q", tc.line, got, tc.want)
		}
		if strings.Contains(tc.want, " OK ") {
			if got, err := c.r.ReadString('\n'); got != "hello\n" || err != nil {
				t.Errorf("%q: content %q, %v", tc.line, got, err)
			}
		}
	}
	if !strings.Contains(out.String(), "wrote "+big+" (8388608 bytes)") {
		t.Errorf("log lacks the generated file:\n%s", out)
	}

	// The content depends on the size only.
	other := t.TempDir()
	otherAddr, _, _ := testbin.Start(t, bin, nil, "--dir", other)
	testbin.Dial(t, otherAddr).Close() // it listens once the file is written
	if a, b := fileDigest(t, big), fileDigest(t, filepath.Join(other, bigName)); a != b {
		t.Errorf("two servers generated different %s: %s and %s", bigName, a, b)
	}
}

// bigSize is a file larger than what the socket buffers of a stopped
// reader can take (a send buffer grows up to tcp_wmem's maximum), so that
// the server is always still sending when the test upgrades it.
func bigSize(t *testing.T) int64 {
	size := int64(8 << 20)
	b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_wmem")
	if err != nil {
		t.Skipf("needs Linux's tcp_wmem: %v", err)
	}
	if f := strings.Fields(string(b)); len(f) == 3 {
		if wmem, err := strconv.ParseInt(f[2], 10, 64); err == nil {
			size = max(size, 2*wmem+4<<20)
		}
	}
	return size
}

// TestUpgradesMidDownload upgrades the server three times while three
// clients are part way through a download and not reading, and a fourth
// downloads the file again and again: every connection and the open file
// it is sending move to the new instance, which sends on from the same
// offset; every download comes out byte for byte.
func TestUpgradesMidDownload(t *testing.T) {
	bin := testbin.Build(t)
	size := bigSize(t)
	dir := t.TempDir()
	addr := testbin.FreeAddr(t)
	notify := testbin.NewNotifier(t)
	args := []string{"--listen", addr, "--dir", dir, "--big-size", strconv.FormatInt(size, 10)}
	inst := testbin.StartInstance(t, bin, notify.Env(), args...)
	notify.Ready(t, inst.Pid())
	versions := []string{"v1", "v1+1", "v1+2", "v1+3"}
	want := fileDigest(t, filepath.Join(dir, bigName))

	// The steady reader.
	stop, done := make(chan struct{}), make(chan error, 1)
	steady := dialFiles(t, addr)
	steady.conn.SetDeadline(time.Now().Add(60 * time.Second))
	files := 0
	go func() {
		done <- func() error {
			last := 0
			for {
				select {
				case <-stop:
					return nil
				default:
				}
				fmt.Fprintf(steady.conn, "GET %s\n", bigName)
				head, err := steady.r.ReadString('\n')
				f := strings.Fields(head)
				if err != nil || len(f) != 4 || f[1] != "OK" || f[2] != strconv.FormatInt(size, 10) || f[3] != want {
					return fmt.Errorf("download %d: %q, %v", files, head, err)
				}
				idx := slices.Index(versions, f[0])
				if idx < last {
					return fmt.Errorf("download %d: from %q after %s", files, f[0], versions[last])
				}
				last = idx
				h := sha256.New()
				buf := make([]byte, 64<<10)
				for left := size; left > 0; {
					n, err := steady.r.Read(buf[:min(int64(len(buf)), left)])
					h.Write(buf[:n])
					left -= int64(n)
					if err != nil {
						return fmt.Errorf("download %d: %d bytes short: %w", files, left, err)
					}
					time.Sleep(200 * time.Microsecond)
				}
				if got := hex.EncodeToString(h.Sum(nil)); got != want {
					return fmt.Errorf("download %d: SHA-256 %s; want %s", files, got, want)
				}
				files++
			}
		}()
	}()

	const slow = 3
	var cs []*fileClient
	var ds []*download
	for i := range slow {
		c := dialFiles(t, addr)
		defer c.conn.Close()
		d := c.get(t, bigName)
		if d.digest != want || d.size != size {
			t.Fatalf("GET %s: %d bytes, %s; want %d, %s", bigName, d.size, d.digest, size, want)
		}
		c.readUpTo(t, d, int64(i+1)*256<<10)
		cs, ds = append(cs, c), append(ds, d)
	}
	for u := 1; u <= 3; u++ {
		next, res, err := inst.Upgrade(t, handoff.DefaultTimeout, bin, notify.Env(), args...)
		if err != nil {
			t.Fatalf("upgrade %d: %v", u, err)
		}
		// The listener, the steady connection (and maybe its file), and
		// each slow connection with its file.
		if min := 1 + 1 + 2*slow; res.FDs < min {
			t.Errorf("upgrade %d handed over %d descriptors; want at least %d, a file with every slow connection", u, res.FDs, min)
		}
		if err := inst.Exit(t); err != nil {
			t.Errorf("old instance after upgrade %d: %v; want exit status 0", u, err)
		}
		inst = next
		notify.Ready(t, inst.Pid())
		// Its log comes through a pipe, which may lag the READY=1 datagram.
		inst.Logged(" took over ")
		if n := strings.Count(inst.Output(), "continuing to send "+filepath.Join(dir, bigName)); n < slow {
			t.Errorf("upgrade %d: the new instance continues %d files; want at least %d:\n%s", u, n, slow, inst.Output())
		}
		for i, c := range cs {
			c.readUpTo(t, ds[i], ds[i].read+1<<20)
		}
		t.Logf("upgrade %d: %d descriptors, %d state bytes handed over; the slow clients are at %d, %d and %d bytes", u, res.FDs, res.StateBytes, ds[0].read, ds[1].read, ds[2].read)
	}
	for i, c := range cs {
		c.finish(t, ds[i])
		// The same connection, served by the last instance from the start.
		d := c.get(t, bigName)
		if d.version != "v1+3" {
			t.Errorf("client %d: the next download comes from %s; want v1+3", i, d.version)
		}
		c.finish(t, d)
	}
	close(stop)
	if err := <-done; err != nil {
		t.Error(err)
	}
	t.Logf("%d slow downloads of %d bytes across 3 upgrades, then %d more; %d steady downloads", slow, size, slow, files)
	inst.Cmd.Process.Signal(syscall.SIGTERM)
	if err := inst.Exit(t); err != nil {
		t.Errorf("last instance after SIGTERM: %v; want exit status 0", err)
	}
}

// TestAbortedUpgradeKeepsSending: a new instance that refuses the state
// (here: a different service) costs a download nothing.
func TestAbortedUpgradeKeepsSending(t *testing.T) {
	bin := testbin.Build(t)
	echo := testbin.BuildPkg(t, "yakimg/testbins/test-echo-server")
	size := bigSize(t)
	dir := t.TempDir()
	addr := testbin.FreeAddr(t)
	args := []string{"--listen", addr, "--dir", dir, "--big-size", strconv.FormatInt(size, 10)}
	inst := testbin.StartInstance(t, bin, nil, args...)
	c := dialFiles(t, addr)
	defer c.conn.Close()
	d := c.get(t, bigName)
	c.readUpTo(t, d, 1<<20)
	_, _, err := inst.Upgrade(t, handoff.DefaultTimeout, echo, nil, "--listen", addr)
	if err == nil || !strings.Contains(err.Error(), "it is test-file-server's, this is test-echo-server") {
		t.Fatalf("upgrade to the echo server = %v; want a failure naming both", err)
	}
	c.finish(t, d)
	if got := c.ask(t, "GET nothing"); got != "v1 ERR nothing: no such file" {
		t.Errorf("after the failed upgrade: %q", got)
	}
	if !inst.Running() || !inst.Logged("handoff failed, serving on") {
		t.Errorf("the old instance does not serve on:\n%s", inst.Output())
	}
}

// Package testbin is what the test services' own tests share: build the
// real program, run it on a free loopback port, and dial it once it listens;
// or run it as graph-resolver runs a component with handoff = "fd-passing"
// and upgrade it (Instance), with a notify socket to see it get ready.
package testbin

import (
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Build compiles the package in the current directory (the program under
// test) and returns the binary's path.
func Build(t testing.TB) string {
	t.Helper()
	return BuildPkg(t, ".")
}

// BuildPkg compiles pkg (an import path, or a directory relative to the
// current one) with the extra go build flags, e.g.
// "-ldflags=-X main.buildVersion=v2", and returns the binary's path.
func BuildPkg(t testing.TB, pkg string, flags ...string) string {
	t.Helper()
	name := path.Base(pkg)
	if pkg == "." {
		wd, err := os.Getwd()
		if err != nil {
			t.Fatal(err)
		}
		name = filepath.Base(wd)
	}
	bin := filepath.Join(t.TempDir(), name)
	args := append(append([]string{"build", "-o", bin}, flags...), pkg)
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return bin
}

// FreeAddr returns a loopback TCP address nobody listens on right now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Start runs bin with "--listen ADDR" and args on a free address, with env
// added to this process's environment; its output is collected in out. The
// process is killed when the test ends.
func Start(t testing.TB, bin string, env []string, args ...string) (addr string, cmd *exec.Cmd, out *Output) {
	t.Helper()
	addr = FreeAddr(t)
	out = &Output{}
	cmd = exec.Command(bin, append([]string{"--listen", addr}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return addr, cmd, out
}

// Dial connects to addr, retrying for up to 20 s while the program comes up;
// the connection gets a 20 s deadline.
func Dial(t testing.TB, addr string) net.Conn {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		conn, err := net.Dial("tcp", addr)
		if err == nil {
			conn.SetDeadline(time.Now().Add(20 * time.Second))
			return conn
		}
		if time.Now().After(deadline) {
			t.Fatalf("dial %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

package report

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// openPTY returns a pseudo-terminal's master and the path of its slave.
func openPTY(t *testing.T) (*os.File, string) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	return m, fmt.Sprintf("/dev/pts/%d", n)
}

func TestDrainTTY(t *testing.T) {
	m, slave := openPTY(t)
	f, err := OpenSerial(slave)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	line := "YAKIMG1 done {}\n"
	if _, err := f.WriteString(line); err != nil {
		t.Fatal(err)
	}
	if err := Drain(f); err != nil {
		t.Fatalf("Drain(pty) = %v", err)
	}
	buf := make([]byte, 64)
	n, err := m.Read(buf)
	if err != nil || string(buf[:n]) != line {
		t.Errorf("master read %q, %v; want %q unchanged", buf[:n], err, line)
	}
}

func TestDrainFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "channel")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := OpenSerial(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := Drain(f); err != nil {
		t.Errorf("Drain(plain file) = %v; want nil", err)
	}
	f.Close()
	if err := Drain(f); err == nil {
		t.Errorf("Drain(closed file) = nil; want an error")
	}
}

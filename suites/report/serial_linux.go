package report

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// OpenSerial opens a serial port for the report channel in raw mode, so the
// tty layer neither rewrites line ends nor echoes. It also works on a plain
// file, for tests, where there is no tty to configure.
func OpenSerial(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("open report channel %s: %w", path, err)
	}
	t, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	if err != nil {
		return f, nil // not a tty
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	if err := unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, t); err != nil {
		f.Close()
		return nil, fmt.Errorf("set raw mode on %s: %w", path, err)
	}
	return f, nil
}

// Drain waits until everything written to f has left the serial port, so a
// power-off right after the last frame cannot cut it short. A plain file has
// nothing to wait for.
func Drain(f *os.File) error {
	// TCSBRK with a non-zero argument is tcdrain(3).
	err := unix.IoctlSetInt(int(f.Fd()), unix.TCSBRK, 1)
	if err != nil && !errors.Is(err, unix.ENOTTY) {
		return fmt.Errorf("drain %s: %w", f.Name(), err)
	}
	return nil
}

package loopback

import (
	"net"
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// TestUpInNewNamespace brings lo up in a fresh network namespace (where
// the kernel leaves it down) on a locked thread, and checks its flags.
func TestUpInNewNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: unshare(CLONE_NEWNET)")
	}
	done := make(chan error)
	go func() {
		// The thread is left in the new namespace, so it must die with
		// the goroutine: never UnlockOSThread.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			done <- err
			return
		}
		lo, err := net.InterfaceByName("lo")
		if err == nil && lo.Flags&net.FlagUp != 0 {
			t.Errorf("lo is up in a new namespace before Up")
		}
		if err := Up(); err != nil {
			done <- err
			return
		}
		lo, err = net.InterfaceByName("lo")
		if err == nil && lo.Flags&net.FlagUp == 0 {
			t.Errorf("lo is still down after Up")
		}
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

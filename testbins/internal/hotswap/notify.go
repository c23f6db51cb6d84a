package hotswap

import (
	"fmt"
	"net"
)

// notifyReady sends one datagram with READY=1 and a STATUS= line to the
// unix datagram socket at path (the sd_notify protocol YakirOS reads). It is
// sent from this process, which stays alive, so graph-resolver can attribute
// it by the sender's pid.
func notifyReady(path, status string) error {
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("notify %s: %w", path, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("READY=1\nSTATUS=" + status)); err != nil {
		return fmt.Errorf("notify %s: %w", path, err)
	}
	return nil
}

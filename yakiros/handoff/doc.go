// Package handoff moves a running service's listening sockets,
// established connections, open files and an opaque state blob to a new
// instance of it, so that an upgrade drops no connection and no byte. The
// wire contract, for services in any language, is docs/HANDOFF.md.
//
// Every instance of a component with handoff = "fd-passing" starts with an
// upgrade socket ($YAKIROS_UPGRADE_FD, descriptor 3) whose other end PID 1
// keeps. For an upgrade PID 1 makes a channel (a SOCK_SEQPACKET
// socketpair), sends one end to the running (old) instance over its
// upgrade socket and starts the new instance with the other end
// ($YAKIROS_HANDOFF_FD, descriptor 4). The instances then talk directly:
//
//	new → old  HELLO                       (version; the new code runs)
//	old        stops accepting and reading
//	old → new  OFFER, FDS…, STATE…, DONE   (descriptors by SCM_RIGHTS)
//	new → old  ACK                         (everything adopted)
//	old → new  COMMIT                      (the old instance lets go)
//	old → PID 1 RESULT                     (on the upgrade socket)
//
// The old instance decides: until it has sent COMMIT it can resume, and it
// does on any error, ABORT, close or timeout.
//
// A service uses three calls. The new instance, at start:
//
//	set, err := handoff.Inherited() // nil, nil when started normally
//	ln, err := set.Listener("http")
//	conns, err := set.Conns()
//	state := set.State()
//	err = set.Ack()                 // then serve, then send READY=1
//
// The old instance, for its whole life:
//
//	err := handoff.Serve(ctx, func(*handoff.Request) (*handoff.Bundle, error) {
//		// stop accepting and reading, then:
//		return &handoff.Bundle{Listeners: ..., Conns: ..., State: ..., Resume: ...}, nil
//	})
//	// err == nil: handed over; exit.
//
// PID 1 uses NewControl when it starts an instance, and Control.Upgrade and
// Upgrade.Wait for an upgrade.
package handoff

package resolver

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"yakimg/yakiros/control"
)

// Clients that send garbage, 10 MB, or nothing at all never hold up the
// loop: while they are all connected, a status request is answered well
// before the silent client's deadline (control.Timeout) could pass.
func TestBadClientsDoNotStall(t *testing.T) {
	in := newInstance(t)
	decl(t, in.dir, "a.toml", "idle", "service", "/bin/sleep", []string{"1000"}, nil, nil)
	in.start()
	in.waitFor("idle", states(map[string]string{"idle": "ACTIVE"}))

	dial := func() *net.UnixConn {
		conn, err := net.Dial("unix", in.socket)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		conn.SetDeadline(time.Now().Add(4 * control.Timeout))
		return conn.(*net.UnixConn)
	}
	silent := dial()
	var garbage []*net.UnixConn
	for range 5 {
		g := dial()
		io.WriteString(g, "\x00\xff{{{ not json at all")
		garbage = append(garbage, g)
	}
	huge := dial()
	go func() {
		io.WriteString(huge, `{"command":"status","args":["`)
		huge.Write(bytes.Repeat([]byte("a"), 10<<20)) // fails once the server has had enough
	}()

	ctx, cancel := context.WithTimeout(context.Background(), control.Timeout/2)
	defer cancel()
	resp, err := control.Do(ctx, in.socket, control.Request{Command: "status"})
	if err != nil || !resp.OK {
		t.Fatalf("status while bad clients are connected = %+v, %v; want an answer within %v", resp, err, control.Timeout/2)
	}

	reply := func(what string, conn *net.UnixConn) control.Response {
		var r control.Response
		if err := json.NewDecoder(conn).Decode(&r); err != nil {
			t.Errorf("%s got no reply: %v", what, err)
		}
		return r
	}
	for _, g := range garbage {
		if r := reply("garbage client", g); r.OK || !strings.HasPrefix(r.Error, "bad request: invalid character") {
			t.Errorf("garbage client got %+v", r)
		}
	}
	if r := reply("10 MB client", huge); r.OK || !strings.HasPrefix(r.Error, "bad request: incomplete request") {
		t.Errorf("10 MB client got %+v", r)
	}
	if r := reply("silent client", silent); r.OK || !strings.HasPrefix(r.Error, "bad request") {
		t.Errorf("silent client got %+v", r)
	}
	if _, err := in.status(); err != nil {
		t.Errorf("status after the bad clients: %v", err)
	}
}

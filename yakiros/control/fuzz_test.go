package control

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// FuzzRequest feeds arbitrary bytes to the server's request decoder: it
// must never panic, must refuse with a "bad request" error or return a
// request with a command, and what it accepts must survive a round trip
// through the client's encoding unchanged.
func FuzzRequest(f *testing.F) {
	f.Add([]byte(`{"command":"status","args":[]}`))
	f.Add([]byte(`{"command":"log","args":["web","50"]}` + "\n"))
	f.Add([]byte(`status`))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := DecodeRequest(bytes.NewReader(data))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "bad request") {
				t.Fatalf("DecodeRequest(%q) error %q; want it to start with \"bad request\"", data, err)
			}
			if req.Command != "" || req.Args != nil {
				t.Fatalf("DecodeRequest(%q) = %+v with error %v; want the zero request", data, req, err)
			}
			return
		}
		if req.Command == "" {
			t.Fatalf("DecodeRequest(%q) accepted a request without a command", data)
		}
		var buf bytes.Buffer
		if err := json.NewEncoder(&buf).Encode(req); err != nil {
			t.Fatalf("encode %+v: %v", req, err)
		}
		again, err := DecodeRequest(&buf)
		if err != nil || !reflect.DeepEqual(again, req) {
			t.Fatalf("round trip of %+v = %+v, %v", req, again, err)
		}
	})
}

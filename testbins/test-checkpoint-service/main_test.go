package main

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"yakimg/testbins/internal/testbin"
)

// The service counts, keeps messages, reports them and passes its own
// health check; the real binary is run.
func TestStateAndCheck(t *testing.T) {
	bin := testbin.Build(t)
	addr, _, _ := testbin.Start(t, bin, nil)
	testbin.Dial(t, addr).Close() // it listens
	post := func(path, body string) {
		t.Helper()
		resp, err := http.Post("http://"+addr+path, "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s: %s", path, resp.Status)
		}
	}
	post("/increment", "")
	post("/increment", "")
	post("/message", "hello")
	post("/message", "world")
	resp, err := http.Get("http://" + addr + "/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if !resp.Close {
		t.Error("connection kept alive: a checkpoint would find an established socket")
	}
	var st State
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st.Counter != 2 || !reflect.DeepEqual(st.Messages, []string{"hello", "world"}) || st.Pid == 0 {
		t.Errorf("state %+v", st)
	}
	if code := check(addr); code != 0 {
		t.Errorf("check of a serving service = %d", code)
	}
	if code := check("127.0.0.1:1"); code == 0 {
		t.Error("check of nothing passed")
	}
}

package hotswap

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestStateRoundTrip(t *testing.T) {
	st := state{Format: stateFormat, Service: "svc", Generation: 2, NextConn: 9, Conns: []connState{
		{Name: "conn-3", Pending: []byte("half a li"), Unsent: []byte{0, 1, 2}, File: "conn-3.file", FileEnd: 1 << 23, Close: true},
		{Name: "conn-8"},
	}}
	blob, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeState(blob, "svc")
	if err != nil || !reflect.DeepEqual(*got, st) {
		t.Errorf("decodeState(%s) = %+v, %v; want %+v", blob, got, err, st)
	}
}

// TestStateRefused: a blob this build cannot be sure it understands is
// refused, and the refusal says why (the old instance logs it).
func TestStateRefused(t *testing.T) {
	for _, tc := range []struct{ blob, want string }{
		{`{"format":"yakimg-testbins-handoff/2","service":"svc"}`, `format "yakimg-testbins-handoff/2"`},
		{`{"format":"yakimg-testbins-handoff/1","service":"other"}`, "it is other's, this is svc"},
		{`{"format":"yakimg-testbins-handoff/1","service":"svc","conns":[{"name":"c","extra":1}]}`, `unknown field "extra"`},
		{`{"format":"yakimg-testbins-handoff/1","service":"svc","generation":-1}`, "generation -1"},
		{`not json`, "state blob"},
		{``, "state blob"},
	} {
		if _, err := decodeState([]byte(tc.blob), "svc"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("decodeState(%s) = %v; want an error containing %q", tc.blob, err, tc.want)
		}
	}
}

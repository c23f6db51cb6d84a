// Package components holds the component declarations installed into the
// image's /etc/graph.d; this test proves graph-resolver accepts them.
package components

import (
	"reflect"
	"testing"

	"yakimg/yakiros/config"
)

func TestDeclarationsLoad(t *testing.T) {
	comps, errs := config.Load(".")
	for _, err := range errs {
		t.Errorf("config.Load(components): %v", err)
	}
	got := map[string]config.Component{}
	for _, c := range comps {
		c.File = ""
		got[c.Name] = c
	}
	want := map[string]config.Component{
		"test-echo-server": {
			Name: "test-echo-server", Binary: "/usr/local/bin/test-echo-server",
			Args: []string{"--listen", "127.0.0.1:7070"}, Type: config.Service,
			Provides: []string{"test.echo"}, Requires: []string{"filesystem.run"},
		},
		"yakimg-suites": {
			Name: "yakimg-suites", Binary: "/usr/bin/yakimg-runner", Args: []string{"suites"},
			Type: config.Oneshot, Requires: []string{"filesystem.run"},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("components =\n%+v\nwant\n%+v", got, want)
	}
}

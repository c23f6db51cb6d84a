package cli

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"yakimg/rootfs"
)

func TestFetchProgress(t *testing.T) {
	a := rootfs.LockedPackage{Name: "a", Version: "1", Size: 750_000, SHA256: strings.Repeat("ab", 32)}
	b := rootfs.LockedPackage{Name: "b", Version: "2", Size: 250_000, SHA256: strings.Repeat("cd", 32)}
	events := []rootfs.FetchEvent{
		{Package: b, State: rootfs.Cached},
		{Package: a, State: rootfs.Downloading},
		{Package: a, State: rootfs.Failed, Err: errors.New("mirror down")},
	}

	var plain bytes.Buffer // not a terminal: one line per event
	fp := newFetchProgress(&plain, []rootfs.LockedPackage{a, b})
	for _, e := range events {
		fp.event(e)
	}
	fp.finish()
	want := "yakimg fetch: b 2: cached\nyakimg fetch: a 1: downloading\nyakimg fetch: a 1: failed: mirror down\n"
	if plain.String() != want {
		t.Errorf("plain progress = %q; want %q", plain.String(), want)
	}

	var term bytes.Buffer // as on a terminal: a redrawn bar, failures on their own line
	fp = newFetchProgress(&term, []rootfs.LockedPackage{a, b})
	fp.bar = true
	for _, e := range events {
		fp.event(e)
	}
	fp.finish()
	got := term.String()
	for _, part := range []string{
		"\r\033[K[#######.......................] 1/2 packages  0.2/1.0 MB",
		"1/2 packages  0.2/1.0 MB  a",
		"\r\033[Kyakimg fetch: a 1: failed: mirror down\n",
	} {
		if !strings.Contains(got, part) {
			t.Errorf("bar output %q lacks %q", got, part)
		}
	}
	if !strings.HasSuffix(got, "\n") {
		t.Errorf("bar output %q does not end its line", got)
	}
}

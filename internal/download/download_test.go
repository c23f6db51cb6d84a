package download

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func mirrorDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "dists", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "dists", "x", "Release"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestOpenEveryKindOfMirror(t *testing.T) {
	dir := mirrorDir(t)
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	for _, base := range []string{dir, "file://" + dir, srv.URL, srv.URL + "/"} {
		b, err := ReadAll(context.Background(), base, "dists/x/Release", 100)
		if err != nil || string(b) != "hello" {
			t.Errorf("ReadAll(%s) = %q, %v; want hello", base, b, err)
		}
	}
}

func TestOpenRefuses(t *testing.T) {
	dir := mirrorDir(t)
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	for _, c := range []struct{ base, rel, want string }{
		{dir, "dists/x/Missing", "no such file"},
		{srv.URL, "dists/x/Missing", "404 Not Found"},
		{dir, "../etc/passwd", "not a relative path"},
		{dir, "/etc/passwd", "not a relative path"},
		{"ftp://example.org", "x", "unsupported scheme"},
	} {
		r, err := Open(context.Background(), c.base, c.rel)
		if err == nil {
			r.Close()
			t.Errorf("Open(%s, %s) succeeded; want %q", c.base, c.rel, c.want)
		} else if !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%s, %s) = %v; want %q", c.base, c.rel, err, c.want)
		}
	}
	if _, err := ReadAll(context.Background(), dir, "dists/x/Release", 3); err == nil || !strings.Contains(err.Error(), "larger than 3 bytes") {
		t.Errorf("ReadAll over the limit = %v", err)
	}
}

func TestOpenHonoursCancel(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer srv.Close()
	defer close(block)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r, err := Open(ctx, srv.URL, "x")
	if err == nil {
		io.Copy(io.Discard, r)
		r.Close()
		t.Fatal("Open with a cancelled context succeeded")
	}
}

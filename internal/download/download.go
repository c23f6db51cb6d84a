// Package download opens files of a package mirror, wherever the mirror
// lives: a local directory, a file:// URL or an http(s):// URL. Package
// sources (Debian, Alpine) use it for indexes and package files alike, so
// an airgapped user can point yakimg at a copied mirror and get the same
// behaviour as online.
package download

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Open returns the file rel (a slash-separated path such as
// "dists/bookworm/Release") of the mirror at base. base is a directory
// path, a file:// URL or an http:// or https:// URL. The caller closes the
// reader and verifies what it reads: Open checks nothing but reachability.
func Open(ctx context.Context, base, rel string) (io.ReadCloser, error) {
	if strings.Contains(rel, "\\") || path.IsAbs(rel) || strings.HasPrefix(path.Clean(rel), "..") {
		return nil, fmt.Errorf("mirror path %q is not a relative path inside the mirror", rel)
	}
	u, err := url.Parse(base)
	if err != nil || u.Scheme == "" || len(u.Scheme) == 1 { // "C:" style or plain path
		return openFile(filepath.Join(base, filepath.FromSlash(rel)))
	}
	switch u.Scheme {
	case "file":
		return openFile(filepath.Join(u.Path, filepath.FromSlash(rel)))
	case "http", "https":
		return openHTTP(ctx, strings.TrimSuffix(base, "/")+"/"+rel)
	}
	return nil, fmt.Errorf("mirror %s: unsupported scheme %q (use a directory, file://, http:// or https://)", base, u.Scheme)
}

// ReadAll is Open followed by reading the whole file, with limit as a guard
// against a mirror that sends without end.
func ReadAll(ctx context.Context, base, rel string, limit int64) ([]byte, error) {
	r, err := Open(ctx, base, rel)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s from %s: %w", rel, base, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("read %s from %s: larger than %d bytes", rel, base, limit)
	}
	return b, nil
}

func openFile(p string) (io.ReadCloser, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("mirror file: %w", err)
	}
	return f, nil
}

func openHTTP(ctx context.Context, u string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	req.Header.Set("User-Agent", "yakimg")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return resp.Body, nil
}

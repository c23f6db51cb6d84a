package main

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
)

// TestParseHeadAgreesWithNetHTTP parses well-formed requests and checks
// every field against what net/http's own reader makes of the same bytes.
func TestParseHeadAgreesWithNetHTTP(t *testing.T) {
	for _, raw := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /health?x=1 HTTP/1.1\r\nHost: a\r\nUser-Agent: t\r\n\r\n",
		"HEAD / HTTP/1.1\r\nhost: a\r\n\r\n",
		"POST /health HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
		"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, Close\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n",
		"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		"GET http://a/health HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /%68ealth HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\nHost: a\n\n",
		"\r\nGET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-Spaces:  v  \r\n\r\n",
	} {
		req, n, e := parseHead([]byte(raw))
		if e != nil || req == nil {
			t.Errorf("parseHead(%q) = %v, %d, %v; want a request", raw, req, n, e)
			continue
		}
		hr, err := http.ReadRequest(bufio.NewReader(strings.NewReader(strings.TrimLeft(raw, "\r\n"))))
		if err != nil {
			t.Fatalf("net/http cannot read %q: %v", raw, err)
		}
		if req.method != hr.Method || req.path() != hr.URL.Path || req.length != max(hr.ContentLength, 0) || req.close != hr.Close || req.minor != hr.ProtoMinor {
			t.Errorf("parseHead(%q) = %+v (path %q); net/http: %s %q length %d close %v HTTP/1.%d",
				raw, req, req.path(), hr.Method, hr.URL.Path, hr.ContentLength, hr.Close, hr.ProtoMinor)
		}
		if body := raw[n:]; int64(len(body)) != req.length {
			t.Errorf("parseHead(%q): head of %d bytes leaves %q; want the %d-byte body", raw, n, body, req.length)
		}
	}
}

func TestParseHeadRefuses(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		code int
	}{
		{"GET / HTTP/1.1\r\n\r\n", 400}, // no Host
		{"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"GET /  HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"GET / HTTP/1.1 x\r\nHost: a\r\n\r\n", 400},
		{"GET / HTTX/1.1\r\nHost: a\r\n\r\n", 400},
		{"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
		{"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400},
		{"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400},
		{"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", 400},
		{"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", 400},
		{"GET / HTTP/1.1\r\nHost: a\r\nX: \x00\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n", 413},
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 501},
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400},
		{"GET / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\n\r\n", 417},
		{"GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", maxHead) + "\r\n\r\n", 431},
		{"GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", maxHead), 431},
	} {
		req, _, e := parseHead([]byte(tc.raw))
		if e == nil || e.code != tc.code {
			t.Errorf("parseHead(%.80q) = %+v, %v; want %d", tc.raw, req, e, tc.code)
		}
	}
}

// TestParseHeadWaitsForAllOfIt feeds a request one byte at a time: no
// prefix is a request or an error.
func TestParseHeadWaitsForAllOfIt(t *testing.T) {
	raw := "\r\nPOST /health HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n"
	for i := range len(raw) {
		if req, n, e := parseHead([]byte(raw[:i])); req != nil || n != 0 || e != nil {
			t.Fatalf("parseHead(%q) = %+v, %d, %v; want to wait for more", raw[:i], req, n, e)
		}
	}
	if req, n, e := parseHead([]byte(raw + "ok")); req == nil || n != len(raw) || e != nil {
		t.Errorf("parseHead(whole) = %+v, %d, %v; want the request and %d", req, n, e, len(raw))
	}
}

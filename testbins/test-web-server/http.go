package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The HTTP/1.1 this server speaks (RFC 9112) is read from the bytes a
// hotswap.Conn holds, not from the socket: a request half read when the
// service is handed over is read again, whole, by the new instance. It
// covers the request line, header fields, Content-Length bodies and
// persistent connections (HTTP/1.1 by default, HTTP/1.0 with
// "Connection: keep-alive"). Transfer-Encoding is answered with 501:
// nothing this server serves takes a body, and chunked ones are not read.

const (
	maxHead = 64 << 10 // the request line and the header fields
	maxBody = 1 << 20
)

// request is what the server uses of one request.
type request struct {
	method    string
	target    string
	minor     int   // HTTP/1.minor
	length    int64 // of the body (Content-Length)
	close     bool  // the connection ends after the response
	keepAlive bool  // HTTP/1.0 with "Connection: keep-alive": say so in the response
	expect    bool  // "Expect: 100-continue"
}

// badRequest is a request answered with code, after which the connection
// is closed: where the next request would start is not known.
type badRequest struct {
	code int
	why  string
}

func (e *badRequest) Error() string { return e.why }

func bad(code int, format string, args ...any) *badRequest {
	return &badRequest{code: code, why: fmt.Sprintf(format, args...)}
}

// parseHead reads the request head at the start of buf, empty lines before
// it included. It returns the request and the head's length, or 0 and no
// error when buf does not hold the whole head yet.
func parseHead(buf []byte) (*request, int, *badRequest) {
	pos := 0
	var lines []string
	for {
		i := bytes.IndexByte(buf[pos:], '\n')
		if i < 0 {
			if len(buf) > maxHead {
				return nil, 0, bad(http.StatusRequestHeaderFieldsTooLarge, "the request head is longer than %d bytes", maxHead)
			}
			return nil, 0, nil
		}
		line := bytes.TrimSuffix(buf[pos:pos+i], []byte("\r"))
		pos += i + 1
		if pos > maxHead {
			return nil, 0, bad(http.StatusRequestHeaderFieldsTooLarge, "the request head is longer than %d bytes", maxHead)
		}
		if bytes.IndexByte(line, '\r') >= 0 {
			return nil, 0, bad(http.StatusBadRequest, "a bare CR in the request head")
		}
		if len(line) == 0 {
			if len(lines) == 0 {
				continue // RFC 9112 §2.2: ignore empty lines before the request line
			}
			req, err := parseLines(lines)
			return req, pos, err
		}
		lines = append(lines, string(line))
	}
}

func parseLines(lines []string) (*request, *badRequest) {
	rl := strings.Split(lines[0], " ")
	if len(rl) != 3 || !isToken(rl[0]) || rl[1] == "" || strings.IndexFunc(rl[1], isCtl) >= 0 {
		return nil, bad(http.StatusBadRequest, "malformed request line %q", lines[0])
	}
	req := &request{method: rl[0], target: rl[1]}
	proto, ok := strings.CutPrefix(rl[2], "HTTP/")
	if !ok || len(proto) != 3 || !isDigit(proto[0]) || proto[1] != '.' || !isDigit(proto[2]) {
		return nil, bad(http.StatusBadRequest, "malformed HTTP version %q", rl[2])
	}
	if proto[0] != '1' {
		return nil, bad(http.StatusHTTPVersionNotSupported, "HTTP/%s is not spoken here", proto)
	}
	req.minor = int(proto[2] - '0')

	hosts, length, chunked, keepAlive := 0, "", false, false
	for _, l := range lines[1:] {
		if l[0] == ' ' || l[0] == '\t' {
			return nil, bad(http.StatusBadRequest, "obsolete line folding in the header fields")
		}
		name, value, ok := strings.Cut(l, ":")
		if !ok || !isToken(name) {
			return nil, bad(http.StatusBadRequest, "malformed header field %q", l)
		}
		value = strings.Trim(value, " \t")
		if strings.IndexFunc(value, func(r rune) bool { return r != '\t' && isCtl(r) }) >= 0 {
			return nil, bad(http.StatusBadRequest, "a control character in header field %s", name)
		}
		switch strings.ToLower(name) {
		case "host":
			hosts++
		case "content-length":
			// Repeated fields must agree (RFC 9110 §8.6); a list in one
			// field is refused, as net/http does.
			if value == "" || strings.Trim(value, "0123456789") != "" || len(value) > 18 || (length != "" && value != length) {
				return nil, bad(http.StatusBadRequest, "bad Content-Length %q", value)
			}
			length = value
		case "transfer-encoding":
			chunked = true
		case "connection":
			for _, opt := range strings.Split(value, ",") {
				switch strings.ToLower(strings.Trim(opt, " \t")) {
				case "close":
					req.close = true
				case "keep-alive":
					keepAlive = true
				}
			}
		case "expect":
			if !strings.EqualFold(value, "100-continue") {
				return nil, bad(http.StatusExpectationFailed, "unknown expectation %q", value)
			}
			req.expect = true
		}
	}
	switch {
	case chunked && length != "":
		return nil, bad(http.StatusBadRequest, "both Transfer-Encoding and Content-Length")
	case chunked:
		return nil, bad(http.StatusNotImplemented, "Transfer-Encoding is not supported")
	case hosts > 1 || (req.minor >= 1 && hosts == 0):
		return nil, bad(http.StatusBadRequest, "%d Host header fields; want one", hosts)
	}
	if length != "" {
		req.length, _ = strconv.ParseInt(length, 10, 64)
		if req.length > maxBody {
			return nil, bad(http.StatusRequestEntityTooLarge, "a body of %d bytes; at most %d are read", req.length, maxBody)
		}
	}
	if req.minor == 0 {
		req.keepAlive = keepAlive && !req.close
		req.close = !req.keepAlive
	}
	return req, nil
}

// path is the decoded path the request names, "" if its target is not
// one this server understands.
func (r *request) path() string {
	u, err := url.ParseRequestURI(r.target)
	if err != nil {
		return ""
	}
	if u.Path == "" {
		return "/"
	}
	return u.Path
}

func isDigit(b byte) bool { return '0' <= b && b <= '9' }

func isCtl(r rune) bool { return r < 0x20 || r == 0x7f }

// isToken says whether s is an RFC 9110 token (a method, a field name).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r >= 0x7f || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return true
}

// response is one answer.
type response struct {
	code   int
	header []string // "Name: value" lines
	body   string
}

// bytes renders r as the answer to req (nil for a request that could not
// be parsed): no body for HEAD, the connection's fate in Connection.
func (r *response) bytes(req *request, closing bool) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", r.code, http.StatusText(r.code))
	fmt.Fprintf(&b, "Date: %s\r\n", time.Now().UTC().Format(http.TimeFormat))
	b.WriteString("Content-Type: text/plain; charset=utf-8\r\n")
	fmt.Fprintf(&b, "Content-Length: %d\r\n", len(r.body))
	for _, h := range r.header {
		b.WriteString(h + "\r\n")
	}
	switch {
	case closing:
		b.WriteString("Connection: close\r\n")
	case req != nil && req.keepAlive:
		b.WriteString("Connection: keep-alive\r\n")
	}
	b.WriteString("\r\n")
	if req == nil || req.method != http.MethodHead {
		b.WriteString(r.body)
	}
	return b.Bytes()
}

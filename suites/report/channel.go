package report

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Magic starts every line of the report channel; its digit is the
// framing version.
const Magic = "YAKIMG1"

// Frame kinds.
const (
	KindHello    = "hello"
	KindEvent    = "event"
	KindReport   = "report"
	KindDone     = "done"
	KindSentinel = "sentinel"
)

// Hello opens a run.
type Hello struct {
	Runner      string   `json:"runner"`       // runner version
	ImageDigest string   `json:"image_digest"` // build identity of the image
	Suites      []string `json:"suites"`       // suites about to run
	// Resumed is set on the hello of a run that goes on after a kexec
	// (DESIGN §5): the host sees a second hello from the same image.
	Resumed bool `json:"resumed,omitempty"`
}

// Event reports one finished case.
type Event struct {
	Suite      string `json:"suite"`
	Case       string `json:"case"`
	Status     string `json:"status"`
	DurationMS int64  `json:"duration_ms"`
	Message    string `json:"message"`
}

// Done closes a run; SHA256 is the hex digest of the report line, without
// its line terminator. The host trusts a report only with a matching done.
type Done struct {
	SHA256 string `json:"sha256"`
}

// Sentinel is sent by stage 1's watchdog when the guest's deadline passes
// without a report.
type Sentinel struct {
	Reason      string `json:"reason"`
	UptimeS     int64  `json:"uptime_s"`
	Diagnostics string `json:"diagnostics"`
}

// Writer writes framed lines. Each line is written with one Write call so
// that concurrent writers of whole lines cannot interleave within a line.
type Writer struct {
	w io.Writer
}

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Line encodes one frame, without a line terminator.
func Line(kind string, payload any) ([]byte, error) {
	js, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("encode %s frame: %w", kind, err)
	}
	return []byte(Magic + " " + kind + " " + string(js)), nil
}

func (w *Writer) write(kind string, payload any) ([]byte, error) {
	line, err := Line(kind, payload)
	if err != nil {
		return nil, err
	}
	if _, err := w.w.Write(append(line, '\n')); err != nil {
		return nil, fmt.Errorf("write %s frame: %w", kind, err)
	}
	return line, nil
}

// Hello writes a hello frame.
func (w *Writer) Hello(h Hello) error { _, err := w.write(KindHello, h); return err }

// Event writes an event frame.
func (w *Writer) Event(e Event) error { _, err := w.write(KindEvent, e); return err }

// Sentinel writes a sentinel frame.
func (w *Writer) Sentinel(s Sentinel) error { _, err := w.write(KindSentinel, s); return err }

// Report writes the report frame followed by its done frame.
func (w *Writer) Report(r *Report) error {
	line, err := w.write(KindReport, r)
	if err != nil {
		return err
	}
	_, err = w.write(KindDone, Done{SHA256: Digest(line)})
	return err
}

// Digest is the hex sha256 of a line without its terminator.
func Digest(line []byte) string {
	sum := sha256.Sum256(bytes.TrimRight(line, "\r\n"))
	return hex.EncodeToString(sum[:])
}

// Frame is one decoded line.
type Frame struct {
	Kind    string
	Payload json.RawMessage
	Raw     []byte // the line without its terminator
}

// ErrNotFramed marks a line that does not start with Magic.
var ErrNotFramed = errors.New("line is not framed")

// ParseLine decodes one line. Serial lines may end in "\r\n" (a tty's output
// processing); both terminators are stripped.
func ParseLine(line []byte) (Frame, error) {
	raw := bytes.TrimRight(line, "\r\n")
	rest, ok := bytes.CutPrefix(raw, []byte(Magic+" "))
	if !ok {
		return Frame{}, fmt.Errorf("%w: %.60q", ErrNotFramed, raw)
	}
	kind, payload, ok := bytes.Cut(rest, []byte(" "))
	if !ok || len(kind) == 0 {
		return Frame{}, fmt.Errorf("frame without kind or payload: %.60q", raw)
	}
	if !json.Valid(payload) {
		return Frame{}, fmt.Errorf("%s frame: payload is not valid JSON: %.60q", kind, payload)
	}
	return Frame{Kind: string(kind), Payload: payload, Raw: raw}, nil
}

// Transcript is everything decoded from one report channel.
type Transcript struct {
	Hello *Hello
	// Hellos counts the hello frames: a run resumed after a kexec says
	// hello once per boot, always from the same image.
	Hellos   int
	Events   []Event
	Report   *Report
	Done     bool      // a done frame matched the report line
	Sentinel *Sentinel // the guest's watchdog fired
	Corrupt  []string  // one message per line that could not be trusted
}

// Trusted reports whether the transcript holds a report confirmed by its
// done frame and nothing corrupt.
func (t *Transcript) Trusted() bool {
	return t.Report != nil && t.Done && len(t.Corrupt) == 0
}

// Decoder accumulates frames into a Transcript.
type Decoder struct {
	T          Transcript
	reportLine []byte
}

// Feed decodes one line. It returns the frame kind it saw, or "" for a
// blank or corrupt line (recorded in T.Corrupt).
func (d *Decoder) Feed(line []byte) string {
	if len(bytes.TrimSpace(line)) == 0 {
		return ""
	}
	f, err := ParseLine(line)
	if err != nil {
		d.T.Corrupt = append(d.T.Corrupt, err.Error())
		return ""
	}
	bad := func(err error) string {
		d.T.Corrupt = append(d.T.Corrupt, fmt.Sprintf("%s frame: %v", f.Kind, err))
		return ""
	}
	switch f.Kind {
	case KindHello:
		var h Hello
		if err := json.Unmarshal(f.Payload, &h); err != nil {
			return bad(err)
		}
		if d.T.Hello != nil && h.ImageDigest != d.T.Hello.ImageDigest {
			return bad(fmt.Errorf("hello from image %s after one from image %s: not the same run", h.ImageDigest, d.T.Hello.ImageDigest))
		}
		d.T.Hello = &h
		d.T.Hellos++
	case KindEvent:
		var e Event
		if err := json.Unmarshal(f.Payload, &e); err != nil {
			return bad(err)
		}
		d.T.Events = append(d.T.Events, e)
	case KindReport:
		var r Report
		if err := json.Unmarshal(f.Payload, &r); err != nil {
			return bad(err)
		}
		d.T.Report, d.T.Done = &r, false
		d.reportLine = f.Raw
	case KindDone:
		var dn Done
		if err := json.Unmarshal(f.Payload, &dn); err != nil {
			return bad(err)
		}
		switch {
		case d.reportLine == nil:
			return bad(errors.New("done without a report"))
		case !strings.EqualFold(dn.SHA256, Digest(d.reportLine)):
			return bad(fmt.Errorf("checksum mismatch: done says %s, report line hashes to %s", dn.SHA256, Digest(d.reportLine)))
		}
		d.T.Done = true
	case KindSentinel:
		var s Sentinel
		if err := json.Unmarshal(f.Payload, &s); err != nil {
			return bad(err)
		}
		d.T.Sentinel = &s
	default:
		return bad(errors.New("unknown frame kind"))
	}
	return f.Kind
}

// Decode reads r to its end.
func Decode(r io.Reader) (*Transcript, error) {
	var d Decoder
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		d.Feed(sc.Bytes())
	}
	return &d.T, sc.Err()
}

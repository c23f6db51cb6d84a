package checkpoint

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 26, 6, 0, 0, 0, time.UTC)

// fake writes a checkpoint with images of the given sizes and seals it.
func fake(t *testing.T, s Store, comp string, at time.Time, sizes ...int) Checkpoint {
	t.Helper()
	id, err := s.Create(comp, at)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"pstree.img", "core-42.img", "mm-42.img", "pages-1.img"}
	for i, n := range sizes {
		if err := os.WriteFile(filepath.Join(s.Path(comp, id), names[i]), []byte(strings.Repeat("x", n)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	m := Metadata{ComponentName: comp, ID: id, OriginalPid: 42, Timestamp: at.Unix(), Capabilities: "a,b",
		CriuVersion: Version{3, 17, 1}, LeaveRunning: true}
	if err := s.Seal(&m); err != nil {
		t.Fatal(err)
	}
	c, err := s.Get(comp, id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestMetadataRoundTripAndFieldNames(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	c := fake(t, s, "svc", t0, 10, 20, 30, 40)
	b, err := os.ReadFile(filepath.Join(c.Path, MetadataFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{`"component_name": "svc"`, `"original_pid": 42`, `"timestamp": ` + "1795672800",
		`"image_size": 100`, `"capabilities": "a,b"`, `"criu_version": {`, `"major": 3`, `"leave_running": true`, `"preserve_fds": ""`} {
		if !strings.Contains(string(b), f) {
			t.Errorf("metadata.json lacks %s:\n%s", f, b)
		}
	}
	m, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m, c.Metadata) || m.ImageSize != 100 || len(m.SHA256) != 4 {
		t.Errorf("decoded %+v, want %+v", m, c.Metadata)
	}
	if _, err := Decode([]byte(`{"component_name":"x","id":"1","bogus":1}`)); err == nil {
		t.Error("unknown field accepted")
	}
	if _, err := Decode(b[:len(b)/2]); err == nil {
		t.Error("truncated metadata accepted")
	}
}

func TestIDsAreUniqueAndSortByAge(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	a, _ := s.Create("svc", t0)
	b, _ := s.Create("svc", t0) // same instant: the next free id
	c, _ := s.Create("svc", t0.Add(time.Second))
	if a == b || !(a < b && b < c) {
		t.Errorf("ids %s %s %s: not unique and ascending", a, b, c)
	}
	if _, err := s.Create("../x", t0); err == nil {
		t.Error("component name with a slash accepted")
	}
}

func TestListLatestRemove(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	old := fake(t, s, "svc", t0, 1, 1, 1)
	newer := fake(t, s, "svc", t0.Add(time.Hour), 1, 1, 1)
	other := fake(t, s, "db", t0, 1, 1, 1)
	cs, bad, err := s.List("")
	if err != nil || len(bad) != 0 {
		t.Fatal(err, bad)
	}
	var ids []string
	for _, c := range cs {
		ids = append(ids, c.ID)
	}
	if want := []string{other.ID, newer.ID, old.ID}; !slices.Equal(ids, want) {
		t.Errorf("list = %v, want %v (db first, then svc newest first)", ids, want)
	}
	if l, err := s.Latest("svc"); err != nil || l.ID != newer.ID {
		t.Errorf("latest = %v, %v; want %s", l.ID, err, newer.ID)
	}
	if err := s.Remove("svc", newer.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("svc", newer.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second remove: %v, want not found", err)
	}
	if l, _ := s.Latest("svc"); l.ID != old.ID {
		t.Errorf("latest after remove = %s, want %s", l.ID, old.ID)
	}
	if _, err := s.Latest("none"); !errors.Is(err, ErrNotFound) {
		t.Errorf("latest of unknown: %v", err)
	}
}

func TestVerifyRefusesChangedImages(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	c := fake(t, s, "svc", t0, 10, 10, 10, 10)
	if err := Verify(c); err != nil {
		t.Fatalf("fresh checkpoint: %v", err)
	}
	p := filepath.Join(c.Path, "pages-1.img")
	if err := os.WriteFile(p, []byte("garbage!!!"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Verify(c); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "pages-1.img") {
		t.Errorf("changed image: %v", err)
	}
	os.Remove(p)
	if err := Verify(c); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing image: %v", err)
	}
	noMM := fake(t, s, "svc", t0, 10, 10)
	if err := Verify(noMM); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "no mm image") {
		t.Errorf("no mm image: %v", err)
	}
	os.WriteFile(filepath.Join(c.Path, MetadataFile), []byte("{"), 0o600)
	if _, err := s.Get("svc", c.ID); !errors.Is(err, ErrCorrupt) {
		t.Errorf("broken metadata: %v", err)
	}
}

func TestCleanupByAgeKeepAndQuota(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	var cs []Checkpoint
	for i := range 5 {
		cs = append(cs, fake(t, s, "svc", t0.Add(time.Duration(i)*time.Hour), 100))
	}
	now := t0.Add(4*time.Hour + time.Minute)
	removed, err := s.Cleanup("", Policy{MaxAge: 3*time.Hour + 30*time.Minute, Keep: 3, Quota: 2*cs[0].Size + 1}, now)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range removed {
		got[r.ID] = r.Reason
	}
	want := map[string]string{
		cs[0].ID: "older than 3h30m0s",
		cs[1].ID: "beyond the newest 3",
		cs[2].ID: "over the quota of " + itoa(2*cs[0].Size+1) + " bytes",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("removed %v, want %v", got, want)
	}
	left, _, _ := s.List("svc")
	if len(left) != 2 || left[0].ID != cs[4].ID || left[1].ID != cs[3].ID {
		t.Errorf("left %v", left)
	}
	u, err := s.Usage()
	if err != nil || len(u) != 1 || u[0].Checkpoints != 2 || u[0].Bytes != left[0].Size+left[1].Size {
		t.Errorf("usage %+v, %v", u, err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestParseMaxAgeAndVersion(t *testing.T) {
	for in, want := range map[string]time.Duration{"7d": 7 * 24 * time.Hour, "90m": 90 * time.Minute} {
		if d, err := ParseMaxAge(in); err != nil || d != want {
			t.Errorf("ParseMaxAge(%q) = %v, %v", in, d, err)
		}
	}
	for _, bad := range []string{"", "0d", "-1h", "x"} {
		if _, err := ParseMaxAge(bad); err == nil {
			t.Errorf("ParseMaxAge(%q) accepted", bad)
		}
	}
	v, err := ParseVersion([]byte("Version: 3.17.1\n"))
	if err != nil || v != (Version{3, 17, 1}) {
		t.Errorf("ParseVersion = %v, %v", v, err)
	}
	if v, _ := ParseVersion([]byte("Version: 4.0\nGitID: x\n")); v != (Version{4, 0, 0}) {
		t.Errorf("two-part version = %v", v)
	}
	if _, err := ParseVersion([]byte("nonsense")); err == nil {
		t.Error("no version accepted")
	}
}

func TestArgs(t *testing.T) {
	if got, want := DumpArgs(42, "/c/x/1", LeaveRunning), "dump -t 42 -D /c/x/1 -o dump.log -v4 --skip-in-flight --leave-running"; strings.Join(got, " ") != want {
		t.Errorf("dump args %q", got)
	}
	if got := DumpArgs(42, "/c/x/1", EndTree); slices.ContainsFunc(got, func(a string) bool { return strings.HasPrefix(a, "--leave-") }) {
		t.Errorf("dump args without leave-running: %q", got)
	}
	if got, want := DumpArgs(42, "/c/x/1", LeaveStopped), "dump -t 42 -D /c/x/1 -o dump.log -v4 --skip-in-flight --leave-stopped"; strings.Join(got, " ") != want {
		t.Errorf("frozen dump args %q", got)
	}
	got := strings.Join(RestoreArgs("/c/x/1", "/c/x/1/p", "pipe:[7]"), " ")
	if want := "restore -D /c/x/1 -o restore.log -v4 --restore-detached --pidfile /c/x/1/p --inherit-fd fd[3]:pipe:[7]"; got != want {
		t.Errorf("restore args %q", got)
	}
}

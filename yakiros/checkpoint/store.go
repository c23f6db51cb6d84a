// Package checkpoint keeps CRIU checkpoints of YakirOS components: it runs
// criu (check, dump, restore detached) and manages the images on the
// persistent /checkpoint partition, one directory <component>/<id>/ per
// checkpoint with a metadata.json, under a retention policy (maximum age,
// a keep count and a per-component byte quota).
package checkpoint

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DefaultDir is the persistent checkpoint partition: it survives reboots
// and kexec, unlike tmpfs.
const DefaultDir = "/checkpoint"

// MetadataFile is the name of the metadata inside each checkpoint directory.
const MetadataFile = "metadata.json"

// ErrNotFound is returned when a checkpoint (or any for a component) does
// not exist.
var ErrNotFound = errors.New("checkpoint not found")

// ErrCorrupt is returned when a checkpoint's images are missing or changed.
var ErrCorrupt = errors.New("checkpoint image corrupt")

// Version is a criu version.
type Version struct {
	Major int `json:"major"`
	Minor int `json:"minor"`
	Patch int `json:"patch"`
}

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// Metadata is metadata.json. The first eight fields keep the reference's
// names; the rest are YakirOS's additions.
type Metadata struct {
	ComponentName string  `json:"component_name"`
	OriginalPid   int     `json:"original_pid"`
	Timestamp     int64   `json:"timestamp"`  // Unix seconds
	ImageSize     int64   `json:"image_size"` // bytes of the image files
	Capabilities  string  `json:"capabilities"`
	CriuVersion   Version `json:"criu_version"`
	LeaveRunning  bool    `json:"leave_running"`
	PreserveFDs   string  `json:"preserve_fds"`

	// ID is the checkpoint's directory name.
	ID string `json:"id"`
	// DumpMS is how long criu dump took.
	DumpMS float64 `json:"dump_ms"`
	// Output is what the process's stdout and stderr were at dump time
	// (a "pipe:[inode]" link): restore hands a fresh log pipe in its place.
	Output string `json:"output,omitempty"`
	// SHA256 maps every image file to its digest, so that a changed or
	// truncated image is refused before criu sees it.
	SHA256 map[string]string `json:"sha256"`
}

// Encode renders m as metadata.json: two-space indent, one field a line.
func (m Metadata) Encode() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode metadata: %w", err)
	}
	return append(b, '\n'), nil
}

// Decode parses metadata.json, refusing unknown fields and trailing data.
func Decode(b []byte) (Metadata, error) {
	var m Metadata
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&m); err != nil {
		return Metadata{}, fmt.Errorf("decode metadata: %w", err)
	}
	if d.More() {
		return Metadata{}, errors.New("decode metadata: trailing data")
	}
	if m.ComponentName == "" || m.ID == "" {
		return Metadata{}, errors.New("decode metadata: component_name and id are required")
	}
	return m, nil
}

// Checkpoint is one stored checkpoint.
type Checkpoint struct {
	Metadata
	Path string // its directory
	Size int64  // bytes on disk now, metadata and logs included
}

// Time is when it was taken.
func (c Checkpoint) Time() time.Time { return time.Unix(c.Timestamp, 0) }

// Store is a checkpoint directory tree: Dir/<component>/<id>/.
type Store struct{ Dir string }

// validName refuses names that would leave the store.
func validName(what, s string) error {
	if s == "" || s == "." || s == ".." || strings.ContainsAny(s, "/\x00") {
		return fmt.Errorf("invalid %s %q", what, s)
	}
	return nil
}

// Path is the directory of component's checkpoint id.
func (s Store) Path(component, id string) string { return filepath.Join(s.Dir, component, id) }

// Create makes a new, empty checkpoint directory for component and returns
// its id. Ids are the creation time in nanoseconds, zero-padded so that
// they sort by age; a collision takes the next free number.
func (s Store) Create(component string, now time.Time) (string, error) {
	if err := validName("component", component); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Join(s.Dir, component), 0o700); err != nil {
		return "", fmt.Errorf("create checkpoint: %w", err)
	}
	n := now.UnixNano()
	for range 1000 {
		id := FormatID(n)
		err := os.Mkdir(s.Path(component, id), 0o700)
		if err == nil {
			return id, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("create checkpoint: %w", err)
		}
		n++
	}
	return "", fmt.Errorf("create checkpoint for %s: no free id", component)
}

// FormatID renders a nanosecond time as an id that sorts by age.
func FormatID(ns int64) string { return fmt.Sprintf("%019d", ns) }

// Seal records the image digests and sizes into m and writes metadata.json
// into the checkpoint directory.
func (s Store) Seal(m *Metadata) error {
	dir := s.Path(m.ComponentName, m.ID)
	sums, size, err := digest(dir)
	if err != nil {
		return err
	}
	if len(sums) == 0 {
		return fmt.Errorf("seal %s: no image files", dir)
	}
	m.SHA256, m.ImageSize = sums, size
	b, err := m.Encode()
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, MetadataFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write metadata: %w", err)
	}
	if err := syncFile(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, MetadataFile)); err != nil {
		return fmt.Errorf("write metadata: %w", err)
	}
	return nil
}

func syncFile(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("sync %s: %w", p, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", p, err)
	}
	return nil
}

// digest hashes every *.img file in dir.
func digest(dir string) (map[string]string, int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, 0, fmt.Errorf("read checkpoint: %w", err)
	}
	sums := map[string]string{}
	var size int64
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".img") {
			continue
		}
		sum, n, err := hashFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, 0, err
		}
		sums[e.Name()], size = sum, size+n
	}
	return sums, size, nil
}

func hashFile(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, fmt.Errorf("hash image: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("hash %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// Get reads one checkpoint.
func (s Store) Get(component, id string) (Checkpoint, error) {
	if err := validName("component", component); err != nil {
		return Checkpoint{}, err
	}
	if err := validName("checkpoint id", id); err != nil {
		return Checkpoint{}, err
	}
	dir := s.Path(component, id)
	b, err := os.ReadFile(filepath.Join(dir, MetadataFile))
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Stat(dir); serr != nil {
			return Checkpoint{}, fmt.Errorf("no checkpoint %s/%s: %w", component, id, ErrNotFound)
		}
		return Checkpoint{}, fmt.Errorf("checkpoint %s/%s: %w: no %s", component, id, ErrCorrupt, MetadataFile)
	}
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint %s/%s: %w", component, id, err)
	}
	m, err := Decode(b)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint %s/%s: %w: %v", component, id, ErrCorrupt, err)
	}
	if m.ComponentName != component || m.ID != id {
		return Checkpoint{}, fmt.Errorf("checkpoint %s/%s: %w: metadata names %s/%s", component, id, ErrCorrupt, m.ComponentName, m.ID)
	}
	size, err := dirSize(dir)
	if err != nil {
		return Checkpoint{}, err
	}
	return Checkpoint{Metadata: m, Path: dir, Size: size}, nil
}

func dirSize(dir string) (int64, error) {
	var size int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			size += fi.Size()
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", dir, err)
	}
	return size, nil
}

// Verify checks that c's images are all there and unchanged, and that
// criu's essential images exist.
func Verify(c Checkpoint) error {
	sums, _, err := digest(c.Path)
	if err != nil {
		return err
	}
	names := sortedKeys(c.SHA256)
	for _, need := range []string{"pstree.img", "core-", "mm-"} {
		if !slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, need) }) {
			return fmt.Errorf("checkpoint %s/%s: %w: no %s image", c.ComponentName, c.ID, ErrCorrupt, strings.TrimSuffix(need, "-"))
		}
	}
	for _, name := range names {
		got, ok := sums[name]
		switch {
		case !ok:
			return fmt.Errorf("checkpoint %s/%s: %w: %s is missing", c.ComponentName, c.ID, ErrCorrupt, name)
		case got != c.SHA256[name]:
			return fmt.Errorf("checkpoint %s/%s: %w: %s does not match its sha256 in %s", c.ComponentName, c.ID, ErrCorrupt, name, MetadataFile)
		}
	}
	for _, name := range sortedKeys(sums) {
		if _, ok := c.SHA256[name]; !ok {
			return fmt.Errorf("checkpoint %s/%s: %w: unexpected image %s", c.ComponentName, c.ID, ErrCorrupt, name)
		}
	}
	return nil
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }

// List returns the checkpoints of component (all components if ""),
// newest first (components in name order when listing all). Directories
// without readable metadata are listed with Err set.
func (s Store) List(component string) ([]Checkpoint, []error, error) {
	comps := []string{component}
	if component == "" {
		entries, err := os.ReadDir(s.Dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("list checkpoints: %w", err)
		}
		comps = nil
		for _, e := range entries {
			if e.IsDir() && e.Name() != "lost+found" {
				comps = append(comps, e.Name())
			}
		}
	} else if err := validName("component", component); err != nil {
		return nil, nil, err
	}
	var out []Checkpoint
	var bad []error
	for _, comp := range comps {
		entries, err := os.ReadDir(filepath.Join(s.Dir, comp))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("list checkpoints: %w", err)
		}
		var cs []Checkpoint
		for _, e := range entries {
			if !e.IsDir() {
				continue
			}
			c, err := s.Get(comp, e.Name())
			if err != nil {
				bad = append(bad, err)
				continue
			}
			cs = append(cs, c)
		}
		slices.SortFunc(cs, func(a, b Checkpoint) int { return strings.Compare(b.ID, a.ID) })
		out = append(out, cs...)
	}
	return out, bad, nil
}

// Latest returns component's newest checkpoint.
func (s Store) Latest(component string) (Checkpoint, error) {
	cs, _, err := s.List(component)
	if err != nil {
		return Checkpoint{}, err
	}
	if len(cs) == 0 {
		return Checkpoint{}, fmt.Errorf("no checkpoints for component '%s': %w", component, ErrNotFound)
	}
	return cs[0], nil
}

// Remove deletes one checkpoint.
func (s Store) Remove(component, id string) error {
	if err := validName("component", component); err != nil {
		return err
	}
	if err := validName("checkpoint id", id); err != nil {
		return err
	}
	dir := s.Path(component, id)
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("no checkpoint %s/%s: %w", component, id, ErrNotFound)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove checkpoint %s/%s: %w", component, id, err)
	}
	return nil
}

// Policy is the retention policy. Zero values disable a limit.
type Policy struct {
	MaxAge time.Duration // older checkpoints are removed
	Keep   int           // at most this many per component
	Quota  int64         // at most this many bytes per component
}

// DefaultPolicy is the reference's: a day, ten per component, 100 MB.
var DefaultPolicy = Policy{MaxAge: 24 * time.Hour, Keep: 10, Quota: 100 << 20}

// Expired returns the checkpoints p removes from cs (one component's,
// newest first) at now, each with the reason: by age, then beyond the
// keep count, then the oldest until the rest fit the quota.
func (p Policy) Expired(cs []Checkpoint, now time.Time) map[string]string {
	out := map[string]string{}
	var kept []Checkpoint
	for _, c := range cs {
		if age := now.Sub(c.Time()); p.MaxAge > 0 && age > p.MaxAge {
			out[c.ID] = fmt.Sprintf("older than %v", p.MaxAge)
			continue
		}
		if p.Keep > 0 && len(kept) >= p.Keep {
			out[c.ID] = fmt.Sprintf("beyond the newest %d", p.Keep)
			continue
		}
		kept = append(kept, c)
	}
	if p.Quota > 0 {
		var total int64
		for _, c := range kept {
			total += c.Size
		}
		for i := len(kept) - 1; i >= 0 && total > p.Quota; i-- {
			out[kept[i].ID] = fmt.Sprintf("over the quota of %d bytes", p.Quota)
			total -= kept[i].Size
		}
	}
	return out
}

// Removed is a checkpoint Cleanup deleted, and why.
type Removed struct {
	Component string `json:"component"`
	ID        string `json:"id"`
	Size      int64  `json:"size"`
	Reason    string `json:"reason"`
}

// Cleanup applies p to component's checkpoints (every component's if "")
// and returns what it removed, in listing order.
func (s Store) Cleanup(component string, p Policy, now time.Time) ([]Removed, error) {
	cs, _, err := s.List(component)
	if err != nil {
		return nil, err
	}
	var removed []Removed
	for _, group := range byComponent(cs) {
		expired := p.Expired(group, now)
		for _, c := range group {
			why, ok := expired[c.ID]
			if !ok {
				continue
			}
			if err := s.Remove(c.ComponentName, c.ID); err != nil {
				return removed, err
			}
			removed = append(removed, Removed{Component: c.ComponentName, ID: c.ID, Size: c.Size, Reason: why})
		}
	}
	return removed, nil
}

// byComponent splits a listing into runs of one component.
func byComponent(cs []Checkpoint) [][]Checkpoint {
	var out [][]Checkpoint
	for i := 0; i < len(cs); {
		j := i
		for j < len(cs) && cs[j].ComponentName == cs[i].ComponentName {
			j++
		}
		out = append(out, cs[i:j])
		i = j
	}
	return out
}

// Usage is how much of the store one component uses.
type Usage struct {
	Component   string `json:"component"`
	Checkpoints int    `json:"checkpoints"`
	Bytes       int64  `json:"bytes"`
}

// Usage sums the checkpoints per component, in name order.
func (s Store) Usage() ([]Usage, error) {
	cs, _, err := s.List("")
	if err != nil {
		return nil, err
	}
	var out []Usage
	for _, group := range byComponent(cs) {
		u := Usage{Component: group[0].ComponentName, Checkpoints: len(group)}
		for _, c := range group {
			u.Bytes += c.Size
		}
		out = append(out, u)
	}
	return out, nil
}

// ParseMaxAge reads a --max-age value: a Go duration or a number of days
// with a "d" suffix ("7d").
func ParseMaxAge(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("invalid max age %q", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("invalid max age %q: a positive duration like 90m, 12h or 7d", s)
	}
	return d, nil
}

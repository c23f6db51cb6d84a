package imagediff

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"yakimg/builder"
	"yakimg/builder/diskimage"
)

// Change kinds of a Difference.
const (
	Added   = "added"
	Removed = "removed"
	Changed = "changed"
)

// Report is the outcome of Diff: every difference, artifacts first, then
// their entries, each group in path order.
type Report struct {
	A           string       `json:"a"`
	B           string       `json:"b"`
	Differences []Difference `json:"differences"`
}

// Difference is one artifact, partition or entry that differs. Path is
// empty when the artifact itself is meant.
type Difference struct {
	Artifact string `json:"artifact"`
	Path     string `json:"path,omitempty"`
	Change   string `json:"change"`
	Attrs    []Attr `json:"attrs,omitempty"` // Changed: what changed; Added/Removed: the one side's values
}

// Attr is one attribute of a difference: its value in A and in B (empty
// for the side that has no such object).
type Attr struct {
	Name string `json:"name"`
	A    string `json:"a,omitempty"`
	B    string `json:"b,omitempty"`
}

// Identical reports whether the two images have no difference at all.
func (r *Report) Identical() bool { return len(r.Differences) == 0 }

// Diff compares the images in directories a and b. Artifacts whose
// manifest digests are equal are not opened; a differing initramfs or
// disk image is walked and compared entry by entry, any other artifact
// (vmlinuz, boot.json) is only reported as differing.
func Diff(a, b string) (*Report, error) {
	ma, err := ReadManifest(a)
	if err != nil {
		return nil, err
	}
	mb, err := ReadManifest(b)
	if err != nil {
		return nil, err
	}
	r := &Report{A: a, B: b}
	outA, outB := outputs(ma), outputs(mb)
	for _, name := range union(outA, outB) {
		oa, inA := outA[name]
		ob, inB := outB[name]
		switch {
		case !inB:
			r.add(Difference{Artifact: name, Change: Removed, Attrs: []Attr{{Name: "sha256", A: oa.SHA256}, {Name: "size", A: fmt.Sprint(oa.Size)}}})
			continue
		case !inA:
			r.add(Difference{Artifact: name, Change: Added, Attrs: []Attr{{Name: "sha256", B: ob.SHA256}, {Name: "size", B: fmt.Sprint(ob.Size)}}})
			continue
		case oa == ob:
			continue
		}
		r.add(Difference{Artifact: name, Change: Changed, Attrs: changedAttrs(
			Attr{Name: "sha256", A: oa.SHA256, B: ob.SHA256},
			Attr{Name: "size", A: fmt.Sprint(oa.Size), B: fmt.Sprint(ob.Size)},
		)})
		switch name {
		case builder.InitramfsFile:
			if err := r.diffInitramfs(a, b); err != nil {
				return nil, err
			}
		case builder.DiskFile:
			if err := r.diffDisk(a, b, ma, mb); err != nil {
				return nil, err
			}
		}
	}
	return r, nil
}

func outputs(m *builder.Manifest) map[string]builder.Output {
	out := map[string]builder.Output{}
	for _, o := range m.Outputs {
		out[o.Name] = o
	}
	return out
}

func union[V any](a, b map[string]V) []string {
	var names []string
	for n := range a {
		names = append(names, n)
	}
	for n := range b {
		if _, ok := a[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

func (r *Report) add(d Difference) { r.Differences = append(r.Differences, d) }

func (r *Report) diffInitramfs(a, b string) error {
	la, err := ListInitramfs(filepath.Join(a, builder.InitramfsFile))
	if err != nil {
		return err
	}
	lb, err := ListInitramfs(filepath.Join(b, builder.InitramfsFile))
	if err != nil {
		return err
	}
	r.diffListings(builder.InitramfsFile, la, lb)
	return nil
}

func (r *Report) diffDisk(a, b string, ma, mb *builder.Manifest) error {
	pa, pb := byName(ma), byName(mb)
	for _, name := range union(pa, pb) {
		art := PartitionArtifact(name)
		xa, inA := pa[name]
		xb, inB := pb[name]
		switch {
		case !inB:
			r.add(Difference{Artifact: art, Change: Removed})
			continue
		case !inA:
			r.add(Difference{Artifact: art, Change: Added})
			continue
		}
		if attrs := changedAttrs(
			Attr{Name: "start", A: fmt.Sprint(xa.StartBytes), B: fmt.Sprint(xb.StartBytes)},
			Attr{Name: "size", A: fmt.Sprint(xa.SizeBytes), B: fmt.Sprint(xb.SizeBytes)},
			Attr{Name: "label", A: xa.Label, B: xb.Label},
			Attr{Name: "partuuid", A: xa.GUID, B: xb.GUID},
			Attr{Name: "fs uuid", A: xa.FSUUID, B: xb.FSUUID},
		); len(attrs) > 0 {
			r.add(Difference{Artifact: art, Change: Changed, Attrs: attrs})
		}
		la, err := ListPartition(filepath.Join(a, builder.DiskFile), xa)
		if err != nil {
			return err
		}
		lb, err := ListPartition(filepath.Join(b, builder.DiskFile), xb)
		if err != nil {
			return err
		}
		r.diffListings(art, la, lb)
	}
	return nil
}

func byName(m *builder.Manifest) map[string]diskimage.PartitionLayout {
	out := map[string]diskimage.PartitionLayout{}
	for _, p := range partitions(m) {
		out[p.Name] = p
	}
	return out
}

// diffListings merges two sorted listings.
func (r *Report) diffListings(artifact string, la, lb Listing) {
	i, j := 0, 0
	for i < len(la) || j < len(lb) {
		switch {
		case j == len(lb) || (i < len(la) && la[i].Path < lb[j].Path):
			r.add(Difference{Artifact: artifact, Path: la[i].Path, Change: Removed, Attrs: sideAttrs(la[i], true)})
			i++
		case i == len(la) || lb[j].Path < la[i].Path:
			r.add(Difference{Artifact: artifact, Path: lb[j].Path, Change: Added, Attrs: sideAttrs(lb[j], false)})
			j++
		default:
			if attrs := entryChanges(la[i], lb[j]); len(attrs) > 0 {
				r.add(Difference{Artifact: artifact, Path: la[i].Path, Change: Changed, Attrs: attrs})
			}
			i, j = i+1, j+1
		}
	}
}

// entryAttrs are the compared attributes of an entry, in report order.
func entryAttrs(e Entry) []Attr {
	return []Attr{
		{Name: "type", A: e.Type},
		{Name: "content sha256", A: e.SHA256},
		{Name: "target", A: e.Target},
		{Name: "device", A: e.Device},
		{Name: "size", A: fmt.Sprint(e.Size)},
		{Name: "mode", A: fmt.Sprintf("%04o", e.Mode)},
		{Name: "owner", A: fmt.Sprintf("%d:%d", e.UID, e.GID)},
	}
}

func entryChanges(a, b Entry) []Attr {
	xa, xb := entryAttrs(a), entryAttrs(b)
	for i := range xa {
		xa[i].B = xb[i].A
	}
	return changedAttrs(xa...)
}

// sideAttrs describes an entry that exists on one side only; empty
// attributes (a file's target, say) are left out.
func sideAttrs(e Entry, inA bool) []Attr {
	var out []Attr
	for _, at := range entryAttrs(e) {
		if at.A == "" || (at.Name == "size" && e.Type != "file" && e.Type != "symlink") {
			continue
		}
		if !inA {
			at.A, at.B = "", at.A
		}
		out = append(out, at)
	}
	return out
}

func changedAttrs(attrs ...Attr) []Attr {
	var out []Attr
	for _, at := range attrs {
		if at.A != at.B {
			out = append(out, at)
		}
	}
	return out
}

// Text is the human layout: one line per difference, or one line saying
// the images are identical.
//
//	initramfs.cpio.zst: init: content sha256 ab12cd34ef56… → 9f8e7d6c5b4a…, size 3145728 → 3145736
func (r *Report) Text() string {
	if r.Identical() {
		return fmt.Sprintf("%s and %s are identical\n", r.A, r.B)
	}
	var b strings.Builder
	for _, d := range r.Differences {
		b.WriteString(d.Artifact)
		if d.Path != "" {
			b.WriteString(": " + d.Path)
		}
		b.WriteString(": ")
		var parts []string
		for _, at := range d.Attrs {
			switch d.Change {
			case Changed:
				parts = append(parts, fmt.Sprintf("%s %s → %s", at.Name, short(at.Name, at.A), short(at.Name, at.B)))
			case Added:
				parts = append(parts, fmt.Sprintf("%s %s", at.Name, short(at.Name, at.B)))
			default:
				parts = append(parts, fmt.Sprintf("%s %s", at.Name, short(at.Name, at.A)))
			}
		}
		if d.Change != Changed {
			b.WriteString(d.Change)
			if len(parts) > 0 {
				b.WriteString(" (" + strings.Join(parts, ", ") + ")")
			}
		} else {
			b.WriteString(strings.Join(parts, ", "))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// short abbreviates digests to 12 hex digits, enough to tell them apart
// on screen; JSON keeps them whole.
func short(name, v string) string {
	if strings.HasSuffix(name, "sha256") {
		if v == "" {
			return "none"
		}
		if len(v) > 12 {
			return v[:12] + "…"
		}
	}
	if v == "" {
		return `""`
	}
	return v
}

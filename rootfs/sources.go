package rootfs

import (
	"cmp"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"yakimg/rootfs/debian"
)

// Sources says where the packages of an image come from: yakimg.toml's
// [debian] and [alpine] tables.
type Sources struct {
	Debian DebianSource `toml:"debian"`
	Alpine AlpineSource `toml:"alpine"`
}

// DebianSource reads Debian packages from this host's apt (no mirror
// listed: apt's downloaded package lists, then `apt-get download`) or from
// the listed mirrors (directories, file:// or http(s):// URLs).
type DebianSource struct {
	Arch string `toml:"arch"` // default amd64
	// Exclude names packages left out of the dependency closure on
	// purpose (see debian.ResolveExcluding).
	Exclude []string       `toml:"exclude"`
	Mirrors []DebianMirror `toml:"mirror"`
}

// DebianMirror is one suite of a Debian archive.
type DebianMirror struct {
	URL        string   `toml:"url"`
	Suite      string   `toml:"suite"`
	Components []string `toml:"components"` // default ["main"]
	// Keyring, when set, is an OpenPGP keyring the mirror's Release file
	// must be signed with (e.g. /usr/share/keyrings/debian-archive-keyring.gpg).
	Keyring string `toml:"keyring"`
}

// AlpineSource reads Alpine packages from one repository of an Alpine
// mirror (a directory or URL holding <arch>/APKINDEX.tar.gz).
type AlpineSource struct {
	URL      string   `toml:"url"`
	Arch     string   `toml:"arch"` // default x86_64
	Keys     string   `toml:"keys"` // directory of trusted *.rsa.pub; default: Alpine's own keys
	Packages []string `toml:"packages"`
}

// Normalize fills defaults, makes relative paths relative to root (the
// project directory) and checks what can be checked without the network.
func (s *Sources) Normalize(root string) error {
	*s = s.withDefaults()
	d := &s.Debian
	for i := range d.Mirrors {
		m := &d.Mirrors[i]
		if m.URL == "" || m.Suite == "" {
			return fmt.Errorf("[[debian.mirror]] #%d needs url and suite", i+1)
		}
		if len(m.Components) == 0 {
			m.Components = []string{"main"}
		}
		m.URL = localPath(root, m.URL)
		if m.Keyring != "" {
			m.Keyring = localPath(root, m.Keyring)
		}
	}
	a := &s.Alpine
	if len(a.Packages) > 0 && a.URL == "" {
		return fmt.Errorf("[alpine] lists packages but no url (a mirror directory or URL)")
	}
	if a.URL != "" {
		a.URL = localPath(root, a.URL)
	}
	if a.Keys != "" {
		a.Keys = localPath(root, a.Keys)
	}
	return nil
}

// withDefaults fills in the architectures: amd64 for Debian, x86_64 for
// Alpine (the same machine, in each distribution's spelling).
func (s Sources) withDefaults() Sources {
	s.Debian.Arch = cmp.Or(s.Debian.Arch, "amd64")
	s.Alpine.Arch = cmp.Or(s.Alpine.Arch, "x86_64")
	return s
}

// localPath makes a relative directory path absolute against root and
// leaves URLs and absolute paths alone.
func localPath(root, p string) string {
	if strings.Contains(p, "://") || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(root, p)
}

// debianIndex reads the package index of every configured place.
func (d DebianSource) index(ctx context.Context) ([]debian.Package, error) {
	if len(d.Mirrors) == 0 {
		return debian.HostIndex(ctx, d.Arch)
	}
	var all []debian.Package
	for _, m := range d.Mirrors {
		idx, err := d.mirror(m).Index(ctx)
		if err != nil {
			return nil, err
		}
		all = append(all, idx...)
	}
	return all, nil
}

func (d DebianSource) mirror(m DebianMirror) debian.Mirror {
	return debian.Mirror{URL: m.URL, Suite: m.Suite, Components: m.Components, Arch: d.Arch, Keyring: m.Keyring}
}

// Want is what a project asks for; its Alpine packages are listed in
// Sources.Alpine.
type Want struct {
	// Kernel is a Debian package pinned alone, without its dependencies:
	// the builder takes it apart instead of installing it.
	Kernel string
	// Debian are the Debian packages to install, with their dependency
	// closure.
	Debian []string
}

// lockDebian pins the kernel alone and the roots with their dependency
// closure.
func lockDebian(ctx context.Context, d DebianSource, w Want) ([]LockedPackage, error) {
	idx, err := d.index(ctx)
	if err != nil {
		return nil, err
	}
	closure, err := debian.ResolveExcluding(idx, d.Arch, w.Debian, d.Exclude)
	if err != nil {
		return nil, err
	}
	if w.Kernel != "" {
		k, err := debian.Newest(idx, d.Arch, w.Kernel)
		if err != nil {
			return nil, err
		}
		closure = append(closure, k)
	}
	pkgs := make([]LockedPackage, 0, len(closure))
	for _, p := range closure {
		pkgs = append(pkgs, LockedPackage{
			Name: p.Name, Version: p.Version, Arch: p.Architecture,
			Filename: p.Filename, Size: p.Size, SHA256: p.SHA256, Source: "debian",
		})
	}
	return pkgs, nil
}

// Resolve turns what a project wants into a complete lock: the kernel, the
// Debian roots and the Alpine ones ([alpine] packages) with their whole
// dependency closures. Alpine packages are downloaded and verified to learn
// their digests; they are put in the cache on the way, so a fetch
// afterwards has nothing left to do for them.
func Resolve(ctx context.Context, s Sources, w Want, cache Cache) (*Lock, error) {
	s = s.withDefaults()
	l := &Lock{Format: LockFormat}
	if w.Kernel != "" || len(w.Debian) > 0 {
		pkgs, err := lockDebian(ctx, s.Debian, w)
		if err != nil {
			return nil, err
		}
		l.Packages = append(l.Packages, pkgs...)
	}
	if len(s.Alpine.Packages) > 0 {
		pkgs, err := lockAlpine(ctx, s.Alpine, cache)
		if err != nil {
			return nil, err
		}
		l.Packages = append(l.Packages, pkgs...)
	}
	if err := l.validate(); err != nil {
		return nil, err
	}
	l.sort()
	return l, nil
}

// Covers reports whether everything wanted is pinned in l by name.
func (l *Lock) Covers(s Sources, w Want) bool {
	for _, want := range [][]string{{w.Kernel}, w.Debian, s.Alpine.Packages} {
		for _, name := range want {
			if name != "" && !slices.ContainsFunc(l.Packages, func(p LockedPackage) bool { return p.Name == name }) {
				return false
			}
		}
	}
	return true
}

package cli

import (
	"flag"
	"fmt"
	"path/filepath"

	"yakimg/builder"
	"yakimg/rootfs"
)

// projectFlags are the flags shared by the verbs that read a project.
type projectFlags struct {
	dir   string
	cache string
}

func (p *projectFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.dir, "project", ".", "`DIR` inside the project (the directory holding yakimg.toml, or below it)")
	fs.StringVar(&p.cache, "cache", rootfs.DefaultCacheDir(), "content-addressed package cache `DIR` ($YAKIMG_CACHE, $XDG_CACHE_HOME/yakimg)")
}

func (p *projectFlags) load() (*builder.Project, error) {
	root, err := builder.FindRoot(p.dir)
	if err != nil {
		return nil, err
	}
	return builder.LoadProject(root)
}

func (p *projectFlags) loadWithLock() (*builder.Project, *rootfs.Lock, error) {
	proj, err := p.load()
	if err != nil {
		return nil, nil, err
	}
	lock, err := rootfs.ReadLock(filepath.Join(proj.Root, builder.LockFile))
	if err != nil {
		return nil, nil, fmt.Errorf("%w (create it with 'yakimg lock')", err)
	}
	return proj, lock, nil
}

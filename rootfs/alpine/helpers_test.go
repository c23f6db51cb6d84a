package alpine

import (
	"testing"

	"yakimg/rootfs/alpine/alpinetest"
)

const testArch = "x86_64"

// testPkgs is a small repository shaped like Alpine's: a libc providing a
// so: name, busybox with an install script, two /bin/sh providers of
// different priority (one with a dependency that is not in the repository,
// so choosing it would fail), an older busybox, a noarch package, a
// dependency cycle, and directories with special modes.
var testPkgs = []alpinetest.Pkg{
	{
		Name: "musl", Version: "1.2.5-r0",
		Provides: []string{"so:libc.musl-x86_64.so.1=1"},
		Files: []alpinetest.File{
			{Path: "lib/ld-musl-x86_64.so.1", Mode: 0o755, Data: "\x7fELF musl loader"},
			{Path: "lib/libc.musl-x86_64.so.1", Link: "ld-musl-x86_64.so.1"},
		},
	},
	{
		Name: "busybox", Version: "1.36.1-r29",
		Depends:  []string{"so:libc.musl-x86_64.so.1"},
		Provides: []string{"cmd:busybox=1.36.1-r29"},
		Scripts:  map[string]string{".post-install": "#!/bin/busybox sh\n/bin/busybox --install -s\n"},
		Files: []alpinetest.File{
			{Path: "bin/busybox", Mode: 0o755, Data: "\x7fELF busybox 1.36.1"},
			{Path: "etc/securetty", Data: "console\n"},
		},
	},
	{
		Name: "busybox", Version: "1.36.0-r0",
		Depends: []string{"so:libc.musl-x86_64.so.1"},
		Files:   []alpinetest.File{{Path: "bin/busybox", Mode: 0o755, Data: "\x7fELF busybox 1.36.0"}},
	},
	{
		Name: "busybox-binsh", Version: "1.36.1-r29",
		Depends:          []string{"busybox=1.36.1-r29"},
		Provides:         []string{"/bin/sh", "cmd:sh=1.36.1-r29"},
		ProviderPriority: 100,
		Files:            []alpinetest.File{{Path: "bin/sh", Link: "/bin/busybox"}},
	},
	{
		Name: "dash-binsh", Version: "0.5.12-r3",
		Depends:          []string{"dash"},
		Provides:         []string{"/bin/sh", "cmd:sh=0.5.12-r3"},
		ProviderPriority: 60,
		Files:            []alpinetest.File{{Path: "bin/sh", Link: "/usr/bin/dash"}},
	},
	{
		Name: "alpine-baselayout", Version: "3.6.5-r0",
		Depends: []string{"/bin/sh", "alpine-baselayout-data=3.6.5-r0", "alpine-keys"},
		Files: []alpinetest.File{
			{Path: "tmp/", Mode: 0o1777},
			{Path: "var/empty/", Mode: 0o555},
			{Path: "etc/shadow", Mode: 0o640, GID: 42, Data: "root:*::0:::::\n"},
		},
	},
	{
		Name: "alpine-baselayout-data", Version: "3.6.5-r0",
		Depends: []string{"alpine-baselayout"},
		Files:   []alpinetest.File{{Path: "etc/hostname", Data: "localhost\n"}},
	},
	{
		Name: "alpine-keys", Version: "2.4-r1", Arch: "noarch",
		Files: []alpinetest.File{{Path: "etc/apk/keys/test.rsa.pub", Data: "key"}},
	},
}

// testMirror writes testPkgs into a fresh mirror directory signed by
// "test.rsa.pub" and returns it with the key and what was built.
func testMirror(t *testing.T) (string, *alpinetest.Key, []alpinetest.Built) {
	t.Helper()
	key := alpinetest.NewKey(t, "test.rsa.pub")
	dir := t.TempDir()
	return dir, key, alpinetest.WriteMirror(t, dir, testArch, key, testPkgs)
}

// keyring trusts exactly keys.
func keyring(t *testing.T, keys ...*alpinetest.Key) Keyring {
	t.Helper()
	k := Keyring{}
	for _, key := range keys {
		pub, err := parsePublicKey(key.PublicPEM())
		if err != nil {
			t.Fatal(err)
		}
		k[key.Name] = pub
	}
	return k
}

// indexEntry is what an index says of b.
func indexEntry(b alpinetest.Built) Package {
	return Package{Name: b.Name, Version: b.Version, Arch: b.Arch, Checksum: b.Checksum, Size: int64(len(b.APK))}
}

// built finds name-version among bs.
func built(t *testing.T, bs []alpinetest.Built, name, version string) alpinetest.Built {
	t.Helper()
	for _, b := range bs {
		if b.Name == name && b.Version == version {
			return b
		}
	}
	t.Fatalf("no built package %s-%s", name, version)
	return alpinetest.Built{}
}

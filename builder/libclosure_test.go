package builder

import (
	"os"
	"strings"
	"testing"

	"yakimg/rootfs"
)

// hostFile adds the host's file at p to the tree under the same path.
func hostFile(t *testing.T, tr *rootfs.Tree, p string) {
	t.Helper()
	data, err := os.ReadFile("/" + p)
	if err != nil {
		t.Skipf("needs the host's /%s (Debian amd64): %v", p, err)
	}
	if err := tr.AddFile(p, 0o755, data); err != nil {
		t.Fatal(err)
	}
}

// lsTree is /usr/bin/ls of this host with the libraries it needs, laid out
// the way Debian packages ship them: the loader reached through a /lib64
// symlink, libc through a versioned name.
func lsTree(t *testing.T, skip string) *rootfs.Tree {
	t.Helper()
	tr := rootfs.NewTree()
	hostFile(t, tr, "usr/bin/ls")
	for _, lib := range []string{"libselinux.so.1", "libc.so.6", "libpcre2-8.so.0", "ld-linux-x86-64.so.2"} {
		if lib != skip {
			hostFile(t, tr, "usr/lib/x86_64-linux-gnu/"+lib)
		}
	}
	if err := tr.AddSymlink("lib", "usr/lib"); err != nil {
		t.Fatal(err)
	}
	if err := tr.AddSymlink("lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"); err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestCheckSharedLibraries(t *testing.T) {
	n, err := checkSharedLibraries(lsTree(t, ""))
	if err != nil || n != 1 {
		t.Fatalf("checkSharedLibraries(ls with its libraries) = %d, %v; want 1 dynamic program, no error", n, err)
	}
	for _, c := range []struct{ skip, want string }{
		{"libpcre2-8.so.0", "/lib/x86_64-linux-gnu/libselinux.so.1 needs libpcre2-8.so.0"}, // needed by a library, found through the /lib link
		{"libselinux.so.1", "/usr/bin/ls needs libselinux.so.1"},
		{"ld-linux-x86-64.so.2", "/usr/bin/ls: interpreter /lib64/ld-linux-x86-64.so.2 is missing"},
	} {
		_, err := checkSharedLibraries(lsTree(t, c.skip))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("without %s: %v; want it to say %q", c.skip, err, c.want)
		}
	}
}

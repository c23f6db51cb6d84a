package debian

import (
	"os/exec"
	"testing"
)

// versionCases are (a, b, want) with want as dpkg --compare-versions gives.
var versionCases = []struct {
	a, b string
	want int
}{
	{"1.0", "1.0", 0},
	{"1.0", "1.0-0", 0},
	{"1.0-0", "1.0", 0},
	{"0:1.0", "1.0", 0},
	{"1.0", "1.1", -1},
	{"1.2", "1.10", -1},
	{"1.002", "1.2", 0},
	{"1.0~rc1", "1.0", -1},
	{"1.0~~", "1.0~", -1},
	{"1.0~~a", "1.0~~", 1},
	{"1.0~", "1.0", -1},
	{"1.0", "1.0a", -1},
	{"1.0a", "1.0+", -1},
	{"1.0+", "1.0.", -1},
	{"1.0.", "1.0a", 1},
	{"1.0a", "1.0b", -1},
	{"1.0Z", "1.0a", -1},
	{"1:0.1", "9.9", 1},
	{"2:1.0", "10:0.1", -1},
	{"1.0-1", "1.0-2", -1},
	{"1.0-1", "1.0-1.1", -1},
	{"1.0-1~bpo1", "1.0-1", -1},
	{"1.0-10", "1.0-9", 1},
	{"3.17.1-2+deb12u2", "3.17.1-2", 1},
	{"2.36-9+deb12u4", "2.36-9+deb12u10", -1},
	{"1.2.3-4-5", "1.2.3-4", 1},
	{"0.0", "0", 1},
	{"1a", "1", 1},
	{"1.0+dfsg", "1.0", 1},
	{"7.88.1-10+deb12u5", "7.88.1-10+deb12u12", -1},
}

func TestCompareVersions(t *testing.T) {
	for _, c := range versionCases {
		if got := CompareVersions(c.a, c.b); got != c.want {
			t.Errorf("CompareVersions(%q, %q) = %d; want %d", c.a, c.b, got, c.want)
		}
		if got := CompareVersions(c.b, c.a); got != -c.want {
			t.Errorf("CompareVersions(%q, %q) = %d; want %d", c.b, c.a, got, -c.want)
		}
	}
}

// TestCompareVersionsDpkg checks the table against the real dpkg, so a
// wrong expectation in the table cannot hide a wrong implementation.
func TestCompareVersionsDpkg(t *testing.T) {
	dpkg, err := exec.LookPath("dpkg")
	if err != nil {
		t.Skip("needs dpkg for the cross-check: ", err)
	}
	ops := map[int]string{-1: "lt", 0: "eq", 1: "gt"}
	for _, c := range versionCases {
		for want, op := range ops {
			err := exec.Command(dpkg, "--compare-versions", c.a, op, c.b).Run()
			holds := err == nil
			if _, isExit := err.(*exec.ExitError); err != nil && !isExit {
				t.Fatalf("dpkg --compare-versions: %v", err)
			}
			if holds != (c.want == want) {
				t.Errorf("dpkg --compare-versions %q %s %q = %v, but the table says %d", c.a, op, c.b, holds, c.want)
			}
		}
	}
}

func TestCheckVersion(t *testing.T) {
	for _, v := range []string{"1.0", "1:2.3-4", "1.0~rc1+dfsg-1.1~bpo12+1", "2.36-9+deb12u4", "0"} {
		if err := CheckVersion(v); err != nil {
			t.Errorf("CheckVersion(%q) = %v; want nil", v, err)
		}
	}
	for _, v := range []string{"", "a1.0", "x:1.0", ":1.0", "1.0-", "1.0 1", "1.0-1_2", "-1:1.0"} {
		if err := CheckVersion(v); err == nil {
			t.Errorf("CheckVersion(%q) = nil; want an error", v)
		}
	}
}

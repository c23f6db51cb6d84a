package stage1

import (
	"os"
	"path/filepath"
	"testing"
)

func TestKernelText(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	got, err := kernelText(write("ok", "ffffffffb2000000 T startup_64\nffffffffb2000000 T _text\n"))
	if err != nil || got != 0xffffffffb2000000 {
		t.Errorf("kernelText = %#x, %v; want 0xffffffffb2000000", got, err)
	}
	for name, text := range map[string]string{
		"hidden":  "0000000000000000 T _text\n",
		"missing": "ffffffffb2000000 T startup_64\n",
		"garbled": "zz T _text\n",
	} {
		if _, err := kernelText(write(name, text)); err == nil {
			t.Errorf("%s: kernelText succeeded", name)
		}
	}
}

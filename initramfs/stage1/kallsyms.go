package stage1

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// kernelText returns the address of the kernel's _text symbol from a
// kallsyms file. Zero addresses mean the file is hidden from us
// (kptr_restrict), which is an error too.
func kernelText(path string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "ffffffff81000000 T _text"
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 || fields[2] != "_text" {
			continue
		}
		addr, err := strconv.ParseUint(fields[0], 16, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: _text at %q: %w", path, fields[0], err)
		}
		if addr == 0 {
			return 0, fmt.Errorf("%s: addresses are hidden", path)
		}
		return addr, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return 0, fmt.Errorf("%s: no _text symbol", path)
}

package alpine

import (
	"cmp"
	"fmt"
	"strings"
)

// An apk version is digit{.digit}...{letter}{_suffix{N}}...{~hash}{-rN}:
// "1.36.1-r29", "2.4_rc1", "1.0_p3", "6.4_git20240101~ab12cd-r0". It is
// read as a sequence of tokens whose kinds must appear in the order below;
// comparison walks both sequences while the kinds agree.
type tokenKind int

const (
	tokInitial  tokenKind = iota // the leading number
	tokDigit                     // ".N"
	tokLetter                    // one lower-case letter after the numbers
	tokSuffix                    // "_alpha" ... "_p"
	tokSuffixNo                  // the number after a suffix
	tokHash                      // "~<hex>", a commit hash
	tokRevision                  // "-rN"
	tokEnd
	tokInvalid
)

// suffixRank orders the known suffixes: pre-releases sort before the plain
// release (rank 0), post-releases after it.
var suffixRank = map[string]int{
	"alpha": -4, "beta": -3, "pre": -2, "rc": -1,
	"cvs": 1, "svn": 2, "git": 3, "hg": 4, "p": 5,
}

type token struct {
	kind tokenKind
	text string // digits, letter, suffix name or hash
}

// tokenizer yields the tokens of one version string.
type tokenizer struct {
	s    string
	pos  int
	prev tokenKind
}

func (t *tokenizer) next() token {
	if t.pos == 0 && t.prev == tokInitial {
		return t.emit(tokInitial, t.run(isDigit))
	}
	if t.pos >= len(t.s) {
		return t.emit(tokEnd, "")
	}
	switch c := t.s[t.pos]; {
	case c >= 'a' && c <= 'z':
		if t.prev > tokDigit {
			break
		}
		t.pos++
		return t.emit(tokLetter, string(c))
	case c == '.':
		if t.prev > tokDigit {
			break
		}
		t.pos++
		return t.emit(tokDigit, t.run(isDigit))
	case isDigit(c):
		// Numbers are read whole, so a digit can only start the number
		// of a suffix ("_rc" "1").
		if t.prev != tokSuffix {
			break
		}
		return t.emit(tokSuffixNo, t.run(isDigit))
	case c == '_':
		if t.prev > tokSuffixNo {
			break
		}
		t.pos++
		name := t.run(func(c byte) bool { return c >= 'a' && c <= 'z' })
		if _, ok := suffixRank[name]; !ok {
			break
		}
		return t.emit(tokSuffix, name)
	case c == '~':
		if t.prev >= tokHash {
			break
		}
		t.pos++
		return t.emit(tokHash, t.run(isHex))
	case c == '-':
		if t.prev >= tokRevision || !strings.HasPrefix(t.s[t.pos:], "-r") {
			break
		}
		t.pos += 2
		return t.emit(tokRevision, t.run(isDigit))
	}
	return t.emit(tokInvalid, "")
}

// emit returns a token of kind k, or an invalid one when its text is empty
// (a kind that needs content but got none, such as "1." or "-r").
func (t *tokenizer) emit(k tokenKind, text string) token {
	if text == "" && k != tokEnd && k != tokInvalid {
		k = tokInvalid
	}
	if k == tokInvalid {
		t.pos = len(t.s) // stop: nothing after an invalid token is read
	}
	t.prev = k
	return token{k, text}
}

func (t *tokenizer) run(ok func(byte) bool) string {
	start := t.pos
	for t.pos < len(t.s) && ok(t.s[t.pos]) {
		t.pos++
	}
	return t.s[start:t.pos]
}

// CheckVersion reports whether v is a well-formed apk version, naming the
// offending part when it is not.
func CheckVersion(v string) error {
	t := tokenizer{s: v}
	for {
		start := t.pos
		switch tok := t.next(); tok.kind {
		case tokEnd:
			return nil
		case tokInvalid:
			return fmt.Errorf("version %q: %q at offset %d is not valid there (want digit{.digit}...{letter}{_suffix{N}}...{~hash}{-rN})",
				v, v[start:], start)
		}
	}
}

// CompareVersions compares two apk versions and returns -1, 0 or +1, the
// way apk-tools orders them:
//
//   - numbers compare numerically, except that a dotted number with a
//     leading zero ("1.02") compares as a string;
//   - _alpha < _beta < _pre < _rc < (release) < _cvs < _svn < _git < _hg < _p;
//   - when one version runs out of tokens first, or continues with a
//     different kind of token, the one whose next token comes earlier in
//     the grammar is greater ("1.2.1" > "1.2a" > "1.2_p1" > "1.2-r1" >
//     "1.2"), except that a pre-release suffix makes it smaller
//     ("1.2_rc1" < "1.2").
//
// Both should pass CheckVersion; for malformed input the result is still
// antisymmetric but two different malformed versions may compare equal.
func CompareVersions(a, b string) int {
	return compareVersions(a, b, false)
}

// compareVersions with fuzzy set treats b as a prefix pattern: a version
// that matches all of b's tokens and goes on compares equal ("~1.2"
// matches "1.2.5" and "1.2-r3").
func compareVersions(a, b string, fuzzy bool) int {
	ta, tb := tokenizer{s: a}, tokenizer{s: b}
	x, y := ta.next(), tb.next()
	for x.kind == y.kind && x.kind < tokEnd {
		if c := compareTokens(x, y); c != 0 {
			return c
		}
		x, y = ta.next(), tb.next()
	}
	switch {
	case x.kind == y.kind, fuzzy && y.kind == tokEnd:
		return 0
	case x.kind == tokSuffix && suffixRank[x.text] < 0:
		return -1
	case y.kind == tokSuffix && suffixRank[y.text] < 0:
		return 1
	case x.kind > y.kind:
		return -1
	}
	return 1
}

func compareTokens(x, y token) int {
	switch x.kind {
	case tokDigit:
		if x.text[0] == '0' || y.text[0] == '0' {
			return strings.Compare(x.text, y.text)
		}
		return compareNumbers(x.text, y.text)
	case tokInitial, tokSuffixNo, tokRevision:
		return compareNumbers(x.text, y.text)
	case tokSuffix:
		return cmp.Compare(suffixRank[x.text], suffixRank[y.text])
	}
	return strings.Compare(x.text, y.text) // letter, hash
}

// compareNumbers compares decimal digit strings by value, at any length.
func compareNumbers(x, y string) int {
	x, y = strings.TrimLeft(x, "0"), strings.TrimLeft(y, "0")
	if c := cmp.Compare(len(x), len(y)); c != 0 {
		return c
	}
	return strings.Compare(x, y)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isHex(c byte) bool {
	return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

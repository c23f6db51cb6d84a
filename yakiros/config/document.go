package config

import (
	"errors"
	"slices"

	"github.com/BurntSushi/toml"
)

// document is a decoded TOML file whose values stay undecoded until a key is
// read, so that every key can still be traced to its line.
type document struct {
	md   toml.MetaData
	root map[string]toml.Primitive
	// sections caches the top-level tables, which lookup walks through
	// for every key.
	sections map[string]map[string]toml.Primitive
}

func decode(data []byte) (*document, error) {
	d := &document{sections: map[string]map[string]toml.Primitive{}}
	md, err := toml.Decode(string(data), &d.root)
	d.md = md
	return d, err
}

// lookup finds key's undecoded value.
func (d *document) lookup(key toml.Key) (toml.Primitive, bool) {
	p, ok := d.root[key[0]]
	if len(key) == 1 || !ok {
		return p, ok
	}
	sec, cached := d.sections[key[0]]
	if !cached {
		if d.md.PrimitiveDecode(p, &sec) != nil {
			return toml.Primitive{}, false
		}
		d.sections[key[0]] = sec
	}
	p, ok = sec[key[1]]
	for _, piece := range key[2:] {
		if !ok {
			break
		}
		var table map[string]toml.Primitive
		if d.md.PrimitiveDecode(p, &table) != nil {
			return toml.Primitive{}, false
		}
		p, ok = table[piece]
	}
	return p, ok
}

// line is the line on which key is defined. A table made implicitly by a
// dotted key has no line of its own; it is named by the first key below it.
// 0 means no line can be named (say, the key is absent).
func (d *document) line(key toml.Key) int {
	for _, k := range d.md.Keys() {
		if len(k) < len(key) || !slices.Equal(k[:len(key)], key) {
			continue
		}
		p, ok := d.lookup(k)
		if !ok {
			continue
		}
		// The toml package records every key's position but reveals it
		// only in the error of a failed decode, so ask for one.
		var pe toml.ParseError
		if errors.As(d.md.PrimitiveDecode(p, locator{}), &pe) && pe.Position.Line > 0 {
			return pe.Position.Line
		}
	}
	return 0
}

// locator is a decode target that always fails; see document.line.
type locator struct{}

func (locator) UnmarshalTOML(any) error { return errors.New("locate") }

// keyLine is the line on which key is defined in data, 0 if none.
func keyLine(data []byte, key ...string) int {
	d, err := decode(data)
	if err != nil {
		return 0
	}
	return d.line(key)
}

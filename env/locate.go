package env

import (
	"fmt"
	"strings"
)

// locate turns a schemaError into a ConfigError that points at the line
// and column where the key is written in src.
func locate(file string, src []byte, se *schemaError) *ConfigError {
	ce := &ConfigError{File: file, Key: dotted(se.Key), Msg: se.Msg}
	want := se.Key
	if se.missing {
		want = se.Key[:len(se.Key)-1]
	}
	// An element of an inline array has no line of its own: point at the
	// nearest enclosing key that has one.
	for ; len(want) > 0 && ce.Line == 0; want = want[:len(want)-1] {
		ce.Line, ce.Col = findKey(string(src), want)
	}
	return ce
}

// dotted writes a key path as devbox.toml spells it: "tools.archive[1].url".
func dotted(key []string) string {
	var b strings.Builder
	for i, k := range key {
		if i > 0 && !strings.HasPrefix(k, "[") {
			b.WriteByte('.')
		}
		b.WriteString(k)
	}
	return b.String()
}

// findKey returns the 1-based line and column of the first place in a TOML
// document that defines key: a table header or a key/value line whose full
// dotted key equals key or lies beneath it. It understands table headers,
// arrays of tables (the Nth [[a.b]] is the path a, b, "[N]"), dotted and
// quoted keys, and skips multi-line strings; it returns 0, 0 when the key
// is not written in the document (it may be implied).
func findKey(src string, key []string) (line, col int) {
	var table []string
	seen := map[string]int{} // [[array]] headers so far, by name
	inMulti := ""
	for i, text := range strings.Split(src, "\n") {
		if inMulti != "" {
			if strings.Contains(text, inMulti) {
				inMulti = ""
			}
			continue
		}
		trimmed := strings.TrimLeft(text, " \t")
		indent := len(text) - len(trimmed)
		switch {
		case trimmed == "" || trimmed[0] == '#':
			continue
		case trimmed[0] == '[':
			name := strings.Trim(trimmed, "[")
			if end := strings.Index(name, "]"); end >= 0 {
				name = name[:end]
			}
			table = splitKey(name)
			if strings.HasPrefix(trimmed, "[[") {
				n := seen[strings.Join(table, ".")]
				seen[strings.Join(table, ".")] = n + 1
				table = append(table, fmt.Sprintf("[%d]", n))
			}
			if hasPrefix(table, key) {
				return i + 1, indent + 1
			}
		default:
			eq := strings.Index(trimmed, "=")
			if eq < 0 {
				continue
			}
			full := append(append([]string{}, table...), splitKey(trimmed[:eq])...)
			if hasPrefix(full, key) {
				return i + 1, indent + 1
			}
			value := strings.TrimSpace(trimmed[eq+1:])
			for _, q := range []string{`"""`, `'''`} {
				if strings.HasPrefix(value, q) && !strings.Contains(value[3:], q) {
					inMulti = q
				}
			}
		}
	}
	return 0, 0
}

// splitKey splits a dotted TOML key, honouring quoted parts.
func splitKey(s string) []string {
	var parts []string
	var cur strings.Builder
	quote := byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			cur.WriteByte(c)
		case c == '"' || c == '\'':
			quote = c
		case c == '.':
			parts = append(parts, strings.TrimSpace(cur.String()))
			cur.Reset()
		case c == ' ' || c == '\t':
		default:
			cur.WriteByte(c)
		}
	}
	return append(parts, strings.TrimSpace(cur.String()))
}

// hasPrefix reports whether key starts with prefix.
func hasPrefix(key, prefix []string) bool {
	if len(prefix) == 0 || len(key) < len(prefix) {
		return false
	}
	for i := range prefix {
		if key[i] != prefix[i] {
			return false
		}
	}
	return true
}

package env

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// ConfigError is a problem in devbox.toml. Error() is one line:
// "devbox.toml:3:1: image.reff: unknown key (did you mean image.ref?)".
type ConfigError struct {
	File      string // the file, as the user would name it
	Line, Col int    // 1-based; 0 when unknown
	Key       string // the dotted key, when the problem is with one key
	Msg       string
	Detail    string // the source lines around the problem, with a caret; may be empty
	Err       error  // the cause, when it came from the TOML parser
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, max(e.Col, 1))
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

func (e *ConfigError) Unwrap() error { return e.Err }

// schemaError is a ConfigError before its position is known.
type schemaError struct {
	Key     []string
	Msg     string
	missing bool // the key is absent: point at its table instead
}

func (e *schemaError) Error() string { return dotted(e.Key) + ": " + e.Msg }

// field describes one key a table accepts.
type field struct {
	typ reflect.Type
}

// schemaOf lists the keys of a struct from its toml tags.
func schemaOf(v any) map[string]field {
	return structSchema(reflect.TypeOf(v))
}

func structSchema(t reflect.Type) map[string]field {
	m := map[string]field{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("toml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		m[tag] = field{typ: f.Type}
	}
	return m
}

// checkSchema reports the first key of table, in sorted order, that the
// schema does not accept or whose value has the wrong type.
func checkSchema(table map[string]any, schema map[string]field, prefix []string) error {
	keys := make([]string, 0, len(table))
	for k := range table {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		key := append(append([]string{}, prefix...), k)
		f, ok := schema[k]
		if !ok {
			msg := "unknown key"
			if s := suggest(k, schema); s != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", dotted(append(append([]string{}, prefix...), s)))
			}
			return &schemaError{Key: key, Msg: msg}
		}
		if err := checkValue(table[k], f.typ, key); err != nil {
			return err
		}
	}
	return nil
}

func checkValue(v any, t reflect.Type, key []string) error {
	bad := func() error {
		return &schemaError{Key: key, Msg: fmt.Sprintf("expected %s, found %s", typeName(t), valueName(v))}
	}
	switch t.Kind() {
	case reflect.String:
		if _, ok := v.(string); !ok {
			return bad()
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			return bad()
		}
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint16, reflect.Uint32:
		if _, ok := v.(int64); !ok {
			return bad()
		}
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return bad()
		}
		return checkSchema(m, structSchema(t), key)
	case reflect.Slice:
		items, ok := v.([]any)
		if !ok {
			if maps, ok := v.([]map[string]any); ok {
				for _, m := range maps {
					items = append(items, m)
				}
			} else {
				return bad()
			}
		}
		for i, it := range items {
			if err := checkValue(it, t.Elem(), append(append([]string{}, key...), fmt.Sprintf("[%d]", i))); err != nil {
				return err
			}
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			return bad()
		}
		for k, it := range m {
			if err := checkValue(it, t.Elem(), append(append([]string{}, key...), k)); err != nil {
				return err
			}
		}
	default:
		panic(fmt.Sprintf("env: schema has unsupported type %s", t))
	}
	return nil
}

func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint16, reflect.Uint32:
		return "an integer"
	case reflect.Struct:
		return "a table"
	case reflect.Slice:
		return "an array of " + strings.TrimPrefix(strings.TrimPrefix(typeName(t.Elem()), "a "), "an ") + "s"
	case reflect.Map:
		return "a table of " + strings.TrimPrefix(strings.TrimPrefix(typeName(t.Elem()), "a "), "an ") + "s"
	}
	return t.String()
}

func valueName(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("the string %q", v)
	case int64:
		return fmt.Sprintf("the integer %d", v)
	case float64:
		return fmt.Sprintf("the float %v", v)
	case bool:
		return fmt.Sprintf("%v", v)
	case map[string]any:
		return "a table"
	case []any, []map[string]any:
		return "an array"
	}
	return fmt.Sprintf("a %T", v)
}

// suggest returns the accepted key closest to k, if it is close enough to be
// a typo.
func suggest(k string, schema map[string]field) string {
	best, bestD := "", 3
	for cand := range schema {
		if d := editDistance(k, cand); d < bestD || (d == bestD && cand < best) {
			best, bestD = cand, d
		}
	}
	if bestD > len(k)/2+1 {
		return ""
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

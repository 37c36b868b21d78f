package env

import (
	"os"
	"reflect"
	"regexp"
	"testing"
)

// TestExampleDocumentsEveryKey: devbox.toml.example parses, and every key
// the schema knows is written in it (set or commented out), so the example
// cannot fall behind the schema.
func TestExampleDocumentsEveryKey(t *testing.T) {
	src, err := os.ReadFile("../devbox.toml.example")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse("/p/devbox.toml", src); err != nil {
		t.Fatalf("devbox.toml.example does not parse: %v", err)
	}
	var walk func(rt reflect.Type, prefix string)
	walk = func(rt reflect.Type, prefix string) {
		for key, f := range structSchema(rt) {
			full := prefix + key
			pattern := `(?m)^#?\s*` + regexp.QuoteMeta(key) + `\s*=`
			switch f.typ.Kind() {
			case reflect.Struct:
				pattern = `(?m)^\[` + regexp.QuoteMeta(full) + `\]`
				walk(f.typ, full+".")
			case reflect.Slice:
				if f.typ.Elem().Kind() == reflect.Struct {
					pattern = `(?m)^\[\[` + regexp.QuoteMeta(full) + `\]\]`
					walk(f.typ.Elem(), full+".")
				}
			case reflect.Map:
				pattern = `(?m)^\[` + regexp.QuoteMeta(full) + `\]`
			}
			if !regexp.MustCompile(pattern).Match(src) {
				t.Errorf("devbox.toml.example does not document %s", full)
			}
		}
	}
	walk(reflect.TypeOf(Config{}), "")
}

// Package wiretest makes values for the round-trip tests of types that
// have a wire form.
package wiretest

import (
	"reflect"
	"strings"
	"testing"
)

// Check round-trips the zero value, Empty and Full through encode and
// decode, and checks that decode refuses every truncation of what encode
// wrote, and a byte after its end.
func Check[T any](t *testing.T, encode func(T) []byte, decode func([]byte) (T, error)) {
	t.Helper()
	var zero T
	for _, v := range []T{zero, Empty[T](), Full[T]()} {
		data := encode(v)
		got, err := decode(data)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if !reflect.DeepEqual(got, v) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, v)
		}
		for i := range data {
			if _, err := decode(data[:i]); err == nil {
				t.Fatalf("%d of %d bytes were accepted", i, len(data))
			}
		}
		if _, err := decode(append(data, 0)); err == nil {
			t.Error("a byte after the end was accepted")
		}
	}
}

// Stable is the body of a fuzz test: data is decoded or refused without a
// panic, and what is decoded survives a round trip.
func Stable[T any](t *testing.T, data []byte, encode func(T) []byte, decode func([]byte) (T, error)) {
	v, err := decode(data)
	if err != nil {
		return
	}
	again, err := decode(encode(v))
	if err != nil || !reflect.DeepEqual(again, v) {
		t.Fatalf("decoded %+v, which does not survive a round trip: %v", v, err)
	}
}

// Full returns a T whose every field, however deep, holds a value that is
// not its zero value and differs from field to field, so that a field the
// wire form leaves out fails a round trip.
func Full[T any]() T {
	var v T
	n := 0
	fill(reflect.ValueOf(&v).Elem(), &n, false)
	return v
}

// Empty returns a T whose every list and map, however deep, is empty but
// not nil, so that a wire form that reads them back as nil fails a round
// trip.
func Empty[T any]() T {
	var v T
	n := 0
	fill(reflect.ValueOf(&v).Elem(), &n, true)
	return v
}

func fill(v reflect.Value, n *int, empty bool) {
	*n++
	switch v.Kind() {
	case reflect.String:
		if !empty {
			v.SetString(strings.Repeat("x", *n) + "é\x00\n")
		}
	case reflect.Bool:
		v.SetBool(!empty)
	case reflect.Int, reflect.Int64:
		if !empty {
			v.SetInt(int64(1000 + *n))
		}
	case reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if !empty {
			v.SetUint(uint64(*n))
		}
	case reflect.Struct:
		for i := range v.NumField() {
			fill(v.Field(i), n, empty)
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), n, empty)
	case reflect.Slice:
		size := 2
		if empty {
			size = 0
		}
		s := reflect.MakeSlice(v.Type(), size, size)
		for i := range size {
			fill(s.Index(i), n, empty)
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		if !empty {
			for range 2 {
				k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
				fill(k, n, false)
				fill(e, n, false)
				m.SetMapIndex(k, e)
			}
		}
		v.Set(m)
	default:
		panic("wiretest: a field of kind " + v.Kind().String() + " needs a case here and in the wire form")
	}
}

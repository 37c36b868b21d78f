// Package wire is devbox's own small binary form for data that one devbox
// process hands to another, or to its own next run: the sandbox's spec and
// pid 1's messages, and the parse cache of devbox.toml and devbox.lock.
//
// It exists because encoding/json builds its reflection caches in each
// fresh process, about 0.2 ms per type on the path of every devbox run.
// Writer and reader are always the same devbox version (the parse cache is
// keyed by the executable), so the form needs no compatibility, only a
// version at its start that the caller checks.
//
// Every value is written in field order: an unsigned integer as a uvarint,
// a signed one zig-zag encoded in a uvarint, a bool as one byte, a string
// as its length and bytes, a list, map or set as its length plus one (0 is
// nil) and its items, a map's and a set's in key order.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// ErrShort is the error of a Decoder that ran out of input.
var ErrShort = errors.New("truncated")

// Encoder appends values to B.
type Encoder struct{ B []byte }

func (e *Encoder) Uint(v uint64) { e.B = binary.AppendUvarint(e.B, v) }

func (e *Encoder) Int(v int64) { e.B = binary.AppendVarint(e.B, v) }

func (e *Encoder) Bool(v bool) {
	if v {
		e.B = append(e.B, 1)
	} else {
		e.B = append(e.B, 0)
	}
}

func (e *Encoder) String(s string) {
	e.Uint(uint64(len(s)))
	e.B = append(e.B, s...)
}

// Len writes the length of a list or map that is nil when isNil.
func (e *Encoder) Len(n int, isNil bool) {
	if isNil {
		e.Uint(0)
	} else {
		e.Uint(uint64(n) + 1)
	}
}

func (e *Encoder) Strings(ss []string) {
	e.Len(len(ss), ss == nil)
	for _, s := range ss {
		e.String(s)
	}
}

func (e *Encoder) Map(m map[string]string) {
	e.Len(len(m), m == nil)
	for _, k := range sortedKeys(m) {
		e.String(k)
		e.String(m[k])
	}
}

// Set writes a set of strings (a map to struct{}) as a list of its keys.
func (e *Encoder) Set(set map[string]struct{}) {
	e.Len(len(set), set == nil)
	for _, k := range sortedKeys(set) {
		e.String(k)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Decoder reads what Encoder wrote. The first error sticks: every later
// read returns a zero value, and Err says what went wrong.
type Decoder struct {
	B   []byte
	Err error
}

func (d *Decoder) Uint() uint64 {
	if d.Err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.B)
	if n <= 0 {
		d.Err = ErrShort
		return 0
	}
	d.B = d.B[n:]
	return v
}

// Int reads what Encoder.Int wrote: binary.AppendVarint's zig-zag
// encoding (0, -1, 1, -2, ...) in a uvarint.
func (d *Decoder) Int() int64 {
	u := d.Uint()
	return int64(u>>1) ^ -int64(u&1)
}

// Below reads an unsigned integer that must be below limit.
func (d *Decoder) Below(limit uint64) uint64 {
	v := d.Uint()
	if v >= limit && d.Err == nil {
		d.Err = fmt.Errorf("value %d out of range", v)
		return 0
	}
	return v
}

// Len reads what Encoder.Len wrote, for items of at least size bytes
// each: a length the rest of the input cannot hold is an error. isNil
// says the list or map was nil.
func (d *Decoder) Len(size int) (n int, isNil bool) {
	v := d.Uint()
	switch {
	case d.Err != nil || v == 0:
		return 0, true
	case v-1 > uint64(len(d.B)/size):
		d.Err = ErrShort
		return 0, true
	}
	return int(v - 1), false
}

// Slice reads a list's length as Len does and makes the list, nil or of
// that many zero items, for the caller to fill in order.
func Slice[T any](d *Decoder, size int) []T {
	n, isNil := d.Len(size)
	if isNil {
		return nil
	}
	return make([]T, n)
}

func (d *Decoder) Bool() bool { return d.Below(2) == 1 }

func (d *Decoder) String() string {
	n := d.Uint()
	if d.Err != nil {
		return ""
	}
	if n > uint64(len(d.B)) {
		d.Err = ErrShort
		return ""
	}
	s := string(d.B[:n])
	d.B = d.B[n:]
	return s
}

func (d *Decoder) Strings() []string {
	ss := Slice[string](d, 1)
	for i := range ss {
		ss[i] = d.String()
	}
	return ss
}

func (d *Decoder) Map() map[string]string {
	n, isNil := d.Len(2)
	if isNil {
		return nil
	}
	m := make(map[string]string, n)
	for range n {
		k := d.String()
		m[k] = d.String()
	}
	return m
}

func (d *Decoder) Set() map[string]struct{} {
	n, isNil := d.Len(1)
	if isNil {
		return nil
	}
	set := make(map[string]struct{}, n)
	for range n {
		set[d.String()] = struct{}{}
	}
	return set
}

// Done is the decoder's error, or an error if input is left over.
func (d *Decoder) Done() error {
	switch {
	case d.Err != nil:
		return d.Err
	case len(d.B) != 0:
		return fmt.Errorf("%d bytes after the end", len(d.B))
	}
	return nil
}

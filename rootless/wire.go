package rootless

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/devboxhq/devbox/mounts"
)

// The parent and the sandbox's pid 1 write the Spec and their messages in a
// small binary form of their own rather than as JSON: encoding/json builds
// its reflection caches in each fresh process, about 0.2 ms on each side of
// the pipe, on the path of every devbox run. Both ends are the same devbox
// version (pid 1 is its embedded init program or devbox itself), so the
// form needs no compatibility, only a check that it is the one expected.
//
// Every value is written in field order: an unsigned integer as a uvarint,
// a bool as one byte, a string as its length and bytes, a list as its
// length and items.

// specVersion starts an encoded Spec.
const specVersion = 1

// errShort is the error of a decoder that ran out of input.
var errShort = errors.New("truncated")

type encoder struct{ b []byte }

func (e *encoder) uint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }

func (e *encoder) int(v int64) { e.b = binary.AppendVarint(e.b, v) }

func (e *encoder) bool(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

func (e *encoder) string(s string) {
	e.uint(uint64(len(s)))
	e.b = append(e.b, s...)
}

func (e *encoder) strings(ss []string) {
	e.uint(uint64(len(ss)))
	for _, s := range ss {
		e.string(s)
	}
}

// decoder reads what encoder wrote. The first error sticks: every later
// read returns a zero value, and err says what went wrong.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

// sint reads what encoder.int wrote: binary.AppendVarint's zig-zag
// encoding (0, -1, 1, -2, ...) in a uvarint.
func (d *decoder) sint() int64 {
	u := d.uint()
	return int64(u>>1) ^ -int64(u&1)
}

// int reads an unsigned integer that must fit below limit.
func (d *decoder) int(limit uint64) uint64 {
	v := d.uint()
	if v >= limit && d.err == nil {
		d.err = fmt.Errorf("value %d out of range", v)
		return 0
	}
	return v
}

// count reads the length of something whose items take at least size
// bytes each: a length the rest of the input cannot hold is an error.
func (d *decoder) count(size uint64) uint64 {
	v := d.uint()
	if v > uint64(len(d.b))/size && d.err == nil {
		d.err = errShort
		return 0
	}
	return v
}

func (d *decoder) bool() bool {
	switch v := d.int(2); v {
	case 1:
		return true
	default:
		return false
	}
}

func (d *decoder) string() string {
	n := d.count(1)
	if d.err != nil {
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) strings() []string {
	n := d.count(1)
	if d.err != nil || n == 0 {
		return nil
	}
	ss := make([]string, n)
	for i := range ss {
		ss[i] = d.string()
	}
	return ss
}

// MarshalBinary encodes s for the sandbox's pid 1.
func (s *Spec) MarshalBinary() ([]byte, error) {
	e := &encoder{b: make([]byte, 0, 4096)}
	e.uint(specVersion)
	e.string(s.RootDir)
	e.uint(uint64(len(s.Mounts)))
	for _, m := range s.Mounts {
		e.string(string(m.Type))
		e.string(m.Source)
		e.string(m.Target)
		e.bool(m.ReadOnly)
		e.bool(m.Recursive)
		e.bool(m.Optional)
		e.string(m.Data)
		e.strings(m.Lower)
		e.string(m.Upper)
		e.string(m.Work)
		e.string(m.Helper)
	}
	p := &s.Process
	e.strings(p.Args)
	e.strings(p.Env)
	e.string(p.Cwd)
	e.uint(uint64(p.UID))
	e.uint(uint64(p.GID))
	e.bool(p.RootEmulation)
	e.bool(p.Terminal)
	e.bool(p.TerminalOutput)
	e.uint(uint64(p.Rows))
	e.uint(uint64(p.Cols))
	e.string(s.Hostname)
	e.string(string(s.Network))
	e.string(string(s.Userns))
	e.uint(uint64(s.UIDMapSize))
	e.uint(uint64(s.GIDMapSize))
	e.string(s.DNS)
	e.string(s.User.Name)
	e.string(s.User.Home)
	e.string(s.User.Shell)
	return e.b, nil
}

// UnmarshalBinary decodes what MarshalBinary wrote.
func (s *Spec) UnmarshalBinary(b []byte) error {
	d := &decoder{b: b}
	if v := d.uint(); v != specVersion && d.err == nil {
		return fmt.Errorf("spec: version %d, want %d (devbox and its init program differ)", v, specVersion)
	}
	*s = Spec{RootDir: d.string()}
	if n := d.count(11); n > 0 {
		s.Mounts = make([]mounts.Mount, n)
	}
	for i := range s.Mounts {
		m := &s.Mounts[i]
		m.Type = mounts.Type(d.string())
		m.Source = d.string()
		m.Target = d.string()
		m.ReadOnly = d.bool()
		m.Recursive = d.bool()
		m.Optional = d.bool()
		m.Data = d.string()
		m.Lower = d.strings()
		m.Upper = d.string()
		m.Work = d.string()
		m.Helper = d.string()
	}
	p := &s.Process
	p.Args = d.strings()
	p.Env = d.strings()
	p.Cwd = d.string()
	p.UID = uint32(d.int(1 << 32))
	p.GID = uint32(d.int(1 << 32))
	p.RootEmulation = d.bool()
	p.Terminal = d.bool()
	p.TerminalOutput = d.bool()
	p.Rows = uint16(d.int(1 << 16))
	p.Cols = uint16(d.int(1 << 16))
	s.Hostname = d.string()
	s.Network = Network(d.string())
	s.Userns = Userns(d.string())
	s.UIDMapSize = int(d.int(1 << 32))
	s.GIDMapSize = int(d.int(1 << 32))
	s.DNS = d.string()
	s.User.Name = d.string()
	s.User.Home = d.string()
	s.User.Shell = d.string()
	switch {
	case d.err != nil:
		return fmt.Errorf("spec: %w", d.err)
	case len(d.b) != 0:
		return fmt.Errorf("spec: %d bytes after the end", len(d.b))
	}
	return nil
}

// readMessage reads one message, as sendMessage frames it: its length,
// then its type, status and error text.
func readMessage(r io.ByteReader) (message, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return message{}, err
	}
	if n > 1<<16 {
		return message{}, fmt.Errorf("message of %d bytes", n)
	}
	b := make([]byte, n)
	for i := range b {
		if b[i], err = r.ReadByte(); err != nil {
			return message{}, io.ErrUnexpectedEOF
		}
	}
	d := &decoder{b: b}
	m := message{Type: msgType(d.string()), Status: int(int32(d.sint())), Error: d.string()}
	if d.err != nil {
		return message{}, fmt.Errorf("message: %w", d.err)
	}
	return m, nil
}

// sendMessage writes m in one write, so that messages never interleave.
func sendMessage(w io.Writer, m message) error {
	body := &encoder{}
	body.string(string(m.Type))
	body.int(int64(m.Status))
	body.string(m.Error)
	frame := binary.AppendUvarint(make([]byte, 0, len(body.b)+3), uint64(len(body.b)))
	_, err := w.Write(append(frame, body.b...))
	return err
}

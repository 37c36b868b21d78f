package rootless

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/devboxhq/devbox/internal/wire"
	"github.com/devboxhq/devbox/mounts"
)

// The parent and the sandbox's pid 1 write the Spec and their messages in
// devbox's own binary form (internal/wire) rather than as JSON. Both ends
// are the same devbox version (pid 1 is its embedded init program or
// devbox itself), so the form needs no compatibility, only a check that it
// is the one expected.

// specVersion starts an encoded Spec.
const specVersion = 4

// MarshalBinary encodes s for the sandbox's pid 1.
func (s *Spec) MarshalBinary() ([]byte, error) {
	e := &wire.Encoder{B: make([]byte, 0, 4096)}
	e.Uint(specVersion)
	e.String(s.RootDir)
	e.Len(len(s.Mounts), s.Mounts == nil)
	for _, m := range s.Mounts {
		e.String(string(m.Type))
		e.String(m.Source)
		e.String(m.Target)
		e.Bool(m.ReadOnly)
		e.Bool(m.Recursive)
		e.Bool(m.Optional)
		e.String(m.Data)
		e.Strings(m.Lower)
		e.String(m.Upper)
		e.String(m.Work)
		e.String(m.Helper)
	}
	p := &s.Process
	e.Strings(p.Args)
	e.Strings(p.Env)
	e.String(p.Cwd)
	e.Uint(uint64(p.UID))
	e.Uint(uint64(p.GID))
	e.Bool(p.RootEmulation)
	e.Bool(p.Terminal)
	e.Bool(p.TerminalOutput)
	e.Uint(uint64(p.Rows))
	e.Uint(uint64(p.Cols))
	e.String(s.Hostname)
	e.String(string(s.Network))
	e.String(string(s.Userns))
	e.Uint(uint64(s.UIDMapSize))
	e.Uint(uint64(s.GIDMapSize))
	e.String(s.DNS)
	e.String(s.User.Name)
	e.String(s.User.Home)
	e.String(s.User.Shell)
	e.String(s.Share)
	e.Bool(s.Sudo)
	return e.B, nil
}

// UnmarshalBinary decodes what MarshalBinary wrote.
func (s *Spec) UnmarshalBinary(b []byte) error {
	d := &wire.Decoder{B: b}
	if v := d.Uint(); v != specVersion && d.Err == nil {
		return fmt.Errorf("spec: version %d, want %d (devbox and its init program differ)", v, specVersion)
	}
	*s = Spec{RootDir: d.String()}
	s.Mounts = wire.Slice[mounts.Mount](d, 11)
	for i := range s.Mounts {
		m := &s.Mounts[i]
		m.Type = mounts.Type(d.String())
		m.Source = d.String()
		m.Target = d.String()
		m.ReadOnly = d.Bool()
		m.Recursive = d.Bool()
		m.Optional = d.Bool()
		m.Data = d.String()
		m.Lower = d.Strings()
		m.Upper = d.String()
		m.Work = d.String()
		m.Helper = d.String()
	}
	p := &s.Process
	p.Args = d.Strings()
	p.Env = d.Strings()
	p.Cwd = d.String()
	p.UID = uint32(d.Below(1 << 32))
	p.GID = uint32(d.Below(1 << 32))
	p.RootEmulation = d.Bool()
	p.Terminal = d.Bool()
	p.TerminalOutput = d.Bool()
	p.Rows = uint16(d.Below(1 << 16))
	p.Cols = uint16(d.Below(1 << 16))
	s.Hostname = d.String()
	s.Network = Network(d.String())
	s.Userns = Userns(d.String())
	s.UIDMapSize = int(d.Below(1 << 32))
	s.GIDMapSize = int(d.Below(1 << 32))
	s.DNS = d.String()
	s.User.Name = d.String()
	s.User.Home = d.String()
	s.User.Shell = d.String()
	s.Share = d.String()
	s.Sudo = d.Bool()
	if err := d.Done(); err != nil {
		return fmt.Errorf("spec: %w", err)
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
	d := &wire.Decoder{B: b}
	m := message{Type: msgType(d.String()), Status: int(int32(d.Int())), Error: d.String()}
	if err := d.Done(); err != nil {
		return message{}, fmt.Errorf("message: %w", err)
	}
	return m, nil
}

// sendMessage writes m in one write, so that messages never interleave.
func sendMessage(w io.Writer, m message) error {
	body := &wire.Encoder{}
	body.String(string(m.Type))
	body.Int(int64(m.Status))
	body.String(m.Error)
	frame := binary.AppendUvarint(make([]byte, 0, len(body.B)+3), uint64(len(body.B)))
	_, err := w.Write(append(frame, body.B...))
	return err
}

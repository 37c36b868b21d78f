package env

import "github.com/devboxhq/devbox/internal/wire"

// The wire forms of Config and Lock, for the parse cache. Lists and maps
// keep nil apart from empty: step keys are made from these values.

func encodeConfig(e *wire.Encoder, c *Config) {
	e.String(c.Image.Ref)
	e.String(c.Image.Platform)
	e.Strings(c.Tools.Packages)
	e.Len(len(c.Tools.Archive), c.Tools.Archive == nil)
	for _, a := range c.Tools.Archive {
		e.String(a.Name)
		e.String(a.URL)
		e.String(a.SHA256)
		e.Int(int64(a.Strip))
		e.String(a.Dest)
		e.Strings(a.Bin)
		e.Strings(a.Path)
	}
	e.Strings(c.Setup.Run)
	e.String(c.Shell.Init)
	e.String(c.Shell.Workdir)
	e.String(c.Shell.Program)
	e.Map(c.Env)
	e.Map(c.Scripts)
	e.Len(len(c.Mounts), c.Mounts == nil)
	for _, m := range c.Mounts {
		e.String(m.Source)
		e.String(m.Target)
		e.Bool(m.ReadOnly)
	}
	e.String(c.Network.Mode)
	e.Strings(c.Network.Ports)
	e.String(c.Sandbox.Userns)
	e.String(c.Path)
}

func decodeConfig(d *wire.Decoder) *Config {
	c := &Config{}
	c.Image.Ref = d.String()
	c.Image.Platform = d.String()
	c.Tools.Packages = d.Strings()
	c.Tools.Archive = wire.Slice[ArchiveConfig](d, 9)
	for i := range c.Tools.Archive {
		a := &c.Tools.Archive[i]
		a.Name = d.String()
		a.URL = d.String()
		a.SHA256 = d.String()
		a.Strip = int(d.Int())
		a.Dest = d.String()
		a.Bin = d.Strings()
		a.Path = d.Strings()
	}
	c.Setup.Run = d.Strings()
	c.Shell.Init = d.String()
	c.Shell.Workdir = d.String()
	c.Shell.Program = d.String()
	c.Env = d.Map()
	c.Scripts = d.Map()
	c.Mounts = wire.Slice[MountConfig](d, 3)
	for i := range c.Mounts {
		m := &c.Mounts[i]
		m.Source = d.String()
		m.Target = d.String()
		m.ReadOnly = d.Bool()
	}
	c.Network.Mode = d.String()
	c.Network.Ports = d.Strings()
	c.Sandbox.Userns = d.String()
	c.Path = d.String()
	return c
}

func encodeLock(e *wire.Encoder, l *Lock) {
	e.Int(int64(l.Version))
	e.String(l.Image.Ref)
	e.Map(l.Image.Digests)
	e.Len(len(l.Archive), l.Archive == nil)
	for _, a := range l.Archive {
		e.String(a.Name)
		e.String(a.URL)
		e.String(a.SHA256)
	}
}

func decodeLock(d *wire.Decoder) *Lock {
	l := &Lock{Version: int(d.Int())}
	l.Image.Ref = d.String()
	l.Image.Digests = d.Map()
	l.Archive = wire.Slice[LockEntry](d, 3)
	for i := range l.Archive {
		a := &l.Archive[i]
		a.Name = d.String()
		a.URL = d.String()
		a.SHA256 = d.String()
	}
	return l
}

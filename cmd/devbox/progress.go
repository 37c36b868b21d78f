package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/devboxhq/devbox/image"
)

// layerProgress shows a pull's progress: on a terminal, a live line per
// layer with bytes and rate, redrawn at most ten times a second; otherwise
// one plain line per layer as it completes; with --quiet, nothing.
type layerProgress struct {
	mu      sync.Mutex
	w       io.Writer
	quiet   bool
	live    bool
	layers  []*layerLine
	byID    map[string]*layerLine
	drawn   int // lines drawn last time
	last    time.Time
	fetched int
	bytes   int64
}

type layerLine struct {
	id     string
	size   int64
	done   int64
	start  time.Time
	state  string // "waiting", "pulling", "done", "present"
	finish time.Time
}

// newLayerProgress draws live lines when the error stream is a terminal
// that can move the cursor.
func newLayerProgress(s *IOStreams) *layerProgress {
	live := IsTerminal(s.ErrFile) && os.Getenv("TERM") != "dumb"
	return &layerProgress{w: s.ErrOut, quiet: s.Quiet, live: live, byID: map[string]*layerLine{}}
}

func (p *layerProgress) event(e image.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	id := e.Layer.Digest.Hex[:12]
	l := p.byID[id]
	if l == nil {
		l = &layerLine{id: id, size: e.Layer.Size, state: "waiting"}
		p.byID[id] = l
		p.layers = append(p.layers, l)
	}
	changed := false
	switch e.Kind {
	case image.LayerCached:
		l.state, changed = "present", true
	case image.LayerStarted:
		l.state, l.start, changed = "pulling", time.Now(), true
	case image.LayerProgress:
		l.done = e.Done
	case image.LayerDone:
		l.state, l.done, l.finish, changed = "done", l.size, time.Now(), true
		p.fetched++
		p.bytes += l.size
	}
	if p.quiet {
		return
	}
	if !p.live {
		if changed && (l.state == "done" || l.state == "present") {
			fmt.Fprintln(p.w, l.plain())
		}
		return
	}
	if changed || time.Since(p.last) >= 100*time.Millisecond {
		p.draw()
	}
}

// draw rewrites the live lines in place.
func (p *layerProgress) draw() {
	var b strings.Builder
	if p.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", p.drawn)
	}
	for _, l := range p.layers {
		b.WriteString("\r\x1b[K" + l.live() + "\n")
	}
	p.drawn = len(p.layers)
	p.last = time.Now()
	io.WriteString(p.w, b.String())
}

func (l *layerLine) plain() string {
	if l.state == "present" {
		return fmt.Sprintf("  %s %9s  already present", l.id, humanBytes(l.size))
	}
	return fmt.Sprintf("  %s %9s  downloaded and unpacked", l.id, humanBytes(l.size))
}

func (l *layerLine) live() string {
	switch l.state {
	case "present":
		return fmt.Sprintf("  %s %9s  already present", l.id, humanBytes(l.size))
	case "waiting":
		return fmt.Sprintf("  %s %9s  waiting", l.id, humanBytes(l.size))
	case "done":
		secs := l.finish.Sub(l.start).Seconds()
		return fmt.Sprintf("  %s %9s  done in %.1fs", l.id, humanBytes(l.size), secs)
	}
	rate := ""
	if secs := time.Since(l.start).Seconds(); secs > 0.2 {
		rate = fmt.Sprintf("  %s/s", humanBytes(int64(float64(l.done)/secs)))
	}
	pct := 0
	if l.size > 0 {
		pct = int(l.done * 100 / l.size)
	}
	return fmt.Sprintf("  %s %9s  %3d%%  %s%s", l.id, humanBytes(l.size), pct, humanBytes(l.done), rate)
}

package mounts

import (
	"strings"
	"testing"
)

func TestPlan(t *testing.T) {
	v := View{
		Layers: []string{"/s/layers/a", "/s/layers/b"}, Upper: "/s/p/upper", Work: "/s/p/work",
		WorkTree: "/home/u/src/proj/", Home: "/s/p/home", HomeTarget: "/home/u", HostNetworkFiles: true,
	}
	plan := Plan(v)
	if plan[0].Type != Overlay || plan[0].Target != "/" || len(plan[0].Lower) != 2 || plan[0].Lower[0] != "/s/layers/a" {
		t.Fatalf("first mount = %+v, want the root overlay with base layer first", plan[0])
	}
	index := map[string]int{}
	for i, m := range plan {
		if _, dup := index[m.Target]; dup {
			t.Errorf("target %s is planned twice", m.Target)
		}
		index[m.Target] = i
		if !strings.HasPrefix(m.Target, "/") {
			t.Errorf("target %q is not absolute", m.Target)
		}
	}
	// Every mount must come after the mounts of its parent directories, or
	// it would be hidden by them.
	for i, m := range plan {
		for _, parent := range plan[:i] {
			if parent.Type != Symlink && m.Target != parent.Target && strings.HasPrefix(parent.Target+"/", m.Target+"/") {
				t.Errorf("%s is mounted after %s, which it covers", m.Target, parent.Target)
			}
		}
	}
	for _, want := range []string{"/proc", "/sys", "/dev", "/dev/null", "/dev/pts", "/dev/shm", "/tmp", "/etc/resolv.conf", "/home/u", "/home/u/src/proj"} {
		if _, ok := index[want]; !ok {
			t.Errorf("plan has no mount at %s", want)
		}
	}
	if index["/home/u"] > index["/home/u/src/proj"] {
		t.Errorf("the home directory is mounted over the work tree")
	}
	if m := plan[index["/sys"]]; !m.ReadOnly {
		t.Errorf("/sys is writable")
	}
	if m := plan[index["/home/u/src/proj"]]; m.Source != "/home/u/src/proj/" || m.ReadOnly {
		t.Errorf("work tree mount = %+v, want the project read-write at its own path", m)
	}
}

func TestPlanWithoutHostNetwork(t *testing.T) {
	for _, m := range Plan(View{Layers: []string{"/l"}, Upper: "/u", Work: "/w"}) {
		if strings.HasPrefix(m.Target, "/etc/") {
			t.Errorf("plan binds %s although the sandbox has its own network", m.Target)
		}
	}
}

func TestCommonDir(t *testing.T) {
	tests := []struct {
		paths []string
		want  string
	}{
		{[]string{"/a/b/layers/x", "/a/b/layers/y", "/a/b/projects/p/upper"}, "/a/b"},
		{[]string{"/a/x", "/b/y"}, "/"},
		{[]string{"/a/b/c"}, "/a/b"},
		{[]string{"/ab/x", "/a/y"}, "/"},
	}
	for _, tt := range tests {
		if got := commonDir(tt.paths); got != tt.want {
			t.Errorf("commonDir(%v) = %q, want %q", tt.paths, got, tt.want)
		}
	}
}

package mounts

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// layerSpec describes a layer's entries: "name" a file with content
// "content", "name/" a directory, "name -> target" a symlink, "name !" a
// whiteout, "name/ opaque" an opaque directory.
func makeLayer(t *testing.T, entries ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, e := range entries {
		switch {
		case strings.Contains(e, " -> "):
			name, target, _ := strings.Cut(e, " -> ")
			must(t, os.Symlink(target, filepath.Join(dir, name)))
		case strings.HasSuffix(e, " !"):
			must(t, unix.Mknod(filepath.Join(dir, strings.TrimSuffix(e, " !")), unix.S_IFCHR, 0))
		case strings.HasSuffix(e, "/ opaque"):
			p := filepath.Join(dir, strings.TrimSuffix(e, "/ opaque"))
			must(t, os.MkdirAll(p, 0o755))
			if err := unix.Setxattr(p, "user.overlay.opaque", []byte("y"), 0); err != nil {
				t.Skipf("no user xattrs here: %v", err)
			}
		case strings.HasSuffix(e, "/"):
			must(t, os.MkdirAll(filepath.Join(dir, e), 0o755))
		default:
			name, content, _ := strings.Cut(e, "=")
			must(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
		}
	}
	return dir
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// tree lists dest as "path", "path/" or "path -> target" and file contents.
func tree(t *testing.T, dest string) []string {
	var out []string
	filepath.Walk(dest, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == dest {
			return err
		}
		rel, _ := filepath.Rel(dest, p)
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out = append(out, rel+" -> "+target)
		case fi.IsDir():
			out = append(out, rel+"/")
		default:
			b, _ := os.ReadFile(p)
			out = append(out, rel+"="+string(b))
		}
		return nil
	})
	sort.Strings(out)
	return out
}

func TestFlatten(t *testing.T) {
	outside := t.TempDir()
	tests := []struct {
		name   string
		layers [][]string
		want   []string
	}{
		{"later file wins", [][]string{{"a=1", "b=1"}, {"a=2"}}, []string{"a=2", "b=1"}},
		{"whiteout removes a file and a directory", [][]string{{"d/", "d/x=1", "f=1", "keep=1"}, {"d !", "f !"}}, []string{"keep=1"}},
		{"opaque directory hides earlier contents", [][]string{{"d/", "d/old=1"}, {"d/ opaque", "d/new=2"}}, []string{"d/", "d/new=2"}},
		{"directory merges", [][]string{{"d/", "d/a=1"}, {"d/", "d/b=2"}}, []string{"d/", "d/a=1", "d/b=2"}},
		{"directory replaces a symlink, not followed", [][]string{{"lib -> " + outside}, {"lib/", "lib/x=1"}}, []string{"lib/", "lib/x=1"}},
		{"file replaces a directory", [][]string{{"d/", "d/x=1"}, {"d=file"}}, []string{"d=file"}},
		{"symlink kept as written", [][]string{{"abs -> /etc/passwd", "rel -> ../x"}}, []string{"abs -> /etc/passwd", "rel -> ../x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var layers []string
			for _, l := range tt.layers {
				layers = append(layers, makeLayer(t, l...))
			}
			dest := t.TempDir()
			if err := Flatten(layers, dest); err != nil {
				t.Fatal(err)
			}
			if got := tree(t, dest); strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("flattened:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if entries, _ := os.ReadDir(outside); len(entries) != 0 {
				t.Errorf("Flatten wrote through a symlink outside: %v", entries)
			}
		})
	}
}

func TestFlattenKeepsLayersIntact(t *testing.T) {
	l := makeLayer(t, "f=orig")
	dest := t.TempDir()
	must(t, Flatten([]string{l}, dest))
	must(t, os.WriteFile(filepath.Join(dest, "f"), []byte("changed"), 0o644))
	if b, _ := os.ReadFile(filepath.Join(l, "f")); string(b) != "orig" {
		t.Errorf("writing the flattened copy changed the layer: %q", b)
	}
}

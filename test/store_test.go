package e2e

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestPullSharesLayers: an image that shares its base layer with one
// already pulled downloads and unpacks only its own layers, says so, and
// 'devbox images' counts the base as shared.
func TestPullSharesLayers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	e.mustRun(t, "pull", imageRef(suite.registry, "busybox"))
	r := e.mustRun(t, "pull", imageRef(suite.registry, "layered"))
	if strings.Count(r.Stderr, "already present") != 1 || !strings.Contains(r.Stderr, "3 layers, 2 new") {
		t.Errorf("the second pull does not say it reused the base layer:\n%s", r.Stderr)
	}
	r = e.mustRun(t, "images", "--json")
	var rows []struct {
		Ref    string `json:"ref"`
		Shared int64  `json:"shared"`
		Own    int64  `json:"own"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &rows); err != nil {
		t.Fatalf("images --json: %v\n%s", err, r.Stdout)
	}
	if len(rows) != 2 {
		t.Fatalf("images lists %d images, want 2:\n%s", len(rows), r.Stdout)
	}
	for _, row := range rows {
		if row.Shared == 0 {
			t.Errorf("%s has no shared bytes, but its base layer is shared", row.Ref)
		}
	}
	r = e.mustRun(t, "gc", "--all", "--json")
	var report struct {
		Images []string `json:"images"`
		Layers int      `json:"layers"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &report); err != nil {
		t.Fatalf("gc --json: %v\n%s", err, r.Stdout)
	}
	if len(report.Images) != 2 || report.Layers != 3 {
		t.Errorf("gc --all with no project removed %d images and %d layers, want 2 and 3:\n%s", len(report.Images), report.Layers, r.Stdout)
	}
}

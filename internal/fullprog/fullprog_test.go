package fullprog

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The full program of these tests is a shell script that says how it was
// called.
const script = "#!/bin/sh\necho \"full program: $*\"\n"

// TestMain is also the lean program of TestExec: with FULLPROG_TEST_DIR
// set, it executes the full program, as cmd/devbox's main does.
func TestMain(m *testing.M) {
	if dir, ok := os.LookupEnv("FULLPROG_TEST_DIR"); ok {
		useScript(dir)
		err := Exec()
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(3)
	}
	os.Exit(m.Run())
}

func useScript(dir string) {
	sum := sha256.Sum256([]byte(script))
	Use([]byte(script), hex.EncodeToString(sum[:]), func() (string, error) {
		if dir == "" {
			return "", errors.New("no cache here")
		}
		return dir, nil
	})
}

func TestExec(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		dir     string
		inCache bool
	}{
		{"from the cache", filepath.Join(t.TempDir(), "full"), true},
		{"from memory", "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(self, "run", "--", "make test")
			cmd.Env = append(os.Environ(), "FULLPROG_TEST_DIR="+tt.dir)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if got, want := string(out), "full program: run -- make test\n"; got != want {
				t.Errorf("output %q, want %q", got, want)
			}
			copies, _ := filepath.Glob(filepath.Join(tt.dir, "devbox-full-*"))
			if got := len(copies) == 1; got != tt.inCache {
				t.Errorf("copies in the cache: %v; want one: %v", copies, tt.inCache)
			}
			if tt.inCache {
				data, _ := os.ReadFile(copies[0])
				if string(data) != script {
					t.Errorf("cached copy %q, want the program", data)
				}
			}
		})
	}
}

func TestWithoutFullProgram(t *testing.T) {
	if Lean() {
		t.Fatal("Lean() without Use")
	}
	if err := Exec(); !errors.Is(err, ErrNeeded) {
		t.Errorf("Exec without a full program = %v, want ErrNeeded", err)
	}
	dir := t.TempDir()
	useScript(dir)
	t.Cleanup(func() { Use(nil, "", nil) })
	if !Lean() {
		t.Error("Lean() = false with a full program")
	}
	path, err := Copy()
	if err != nil || filepath.Dir(path) != dir {
		t.Fatalf("Copy() = %q, %v; want a copy in %s", path, err, dir)
	}
	if data, _ := os.ReadFile(path); string(data) != script {
		t.Errorf("the copy holds %q", data)
	}
}

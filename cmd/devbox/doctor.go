package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/devboxhq/devbox/env"
	"github.com/devboxhq/devbox/image"
	"github.com/devboxhq/devbox/internal/fullprog"
	"github.com/devboxhq/devbox/rootless"
	"github.com/spf13/cobra"
)

// DoctorOptions are the arguments of 'devbox doctor'.
type DoctorOptions struct {
	F    *Factory
	JSON bool
}

// NewCmdDoctor wires 'devbox doctor'; runF replaces the work in tests.
func NewCmdDoctor(f *Factory, runF func(*DoctorOptions) error) *cobra.Command {
	opts := &DoctorOptions{F: f}
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check that this machine can run devbox, and say how to fix what cannot",
		Long: `Check what devbox needs from the machine, each on one line with the fix when
it fails: user namespaces (and Ubuntu's AppArmor restriction of them),
overlayfs inside a user namespace, user extended attributes on the store's
filesystem; and the optional features: subordinate ids and newuidmap for
userns = "subuid", slirp4netns and a usable /dev/net/tun for network mode
"isolated"; and what of the host's a sandbox gets: the SSH agent, GnuPG's
agent, and the certificate authorities the host trusts beyond the public
ones.

Exits 0 when the default mode works, 1 otherwise; optional features that are
missing are warnings.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(opts)
			}
			return doctorRun(opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the checks as JSON")
	return cmd
}

func doctorRun(opts *DoctorOptions) error {
	dirs, err := opts.F.Dirs()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dirs.Data, 0o700); err != nil {
		return err
	}
	scratch, err := os.MkdirTemp(dirs.Data, ".tmp-doctor-")
	if err != nil {
		return err
	}
	defer image.RemoveAll(scratch)
	checks := append(append(rootless.Doctor(scratch), fullProgramCheck(), frontCheck()), env.HostChecks()...)
	failed := 0
	for _, c := range checks {
		if c.Required && !c.OK {
			failed++
		}
	}
	out := opts.F.IO.Out
	if opts.JSON {
		if err := printJSON(out, checks); err != nil {
			return err
		}
	} else {
		for _, c := range checks {
			mark := "ok  "
			switch {
			case !c.OK && c.Required:
				mark = "FAIL"
			case !c.OK:
				mark = "warn"
			}
			fmt.Fprintf(out, "%s  %s: %s\n", mark, c.Name, c.Detail)
			if !c.OK && c.Fix != "" {
				fmt.Fprintf(out, "      fix: %s\n", c.Fix)
			}
		}
	}
	if failed > 0 {
		return errors.New("this machine cannot run devbox sandboxes yet: apply the fixes above")
	}
	return nil
}

// fullProgramCheck says where the full program runs from when this devbox
// is the lean one (package fullprog).
// frontCheck says whether a warm `devbox run` can start at the front
// (internal/front), without devbox's Go runtime.
func frontCheck() rootless.Check {
	c := rootless.Check{Name: "warm runs without Go's start-up (the front)"}
	switch {
	case !frontLinked:
		c.Detail = "this devbox was built without the front (not with 'make build', or not for amd64): a warm devbox run takes about twice as long"
		c.Fix = "on amd64, build devbox with 'make build'"
	case os.Getenv("DEVBOX_FRONT") == "0":
		c.Detail = "turned off by DEVBOX_FRONT=0"
		c.Fix = "unset DEVBOX_FRONT"
	default:
		c.OK, c.Detail = true, "a devbox run or shell without options that repeats one in the same directory starts from its record"
	}
	return c
}

func fullProgramCheck() rootless.Check {
	c := rootless.Check{Name: "full program (pulls, downloads, archives)"}
	if !fullprog.Lean() {
		c.OK, c.Detail = true, "this devbox is the full program itself (built without 'make build')"
		return c
	}
	path, err := fullprog.Copy()
	if err != nil {
		c.Detail = fmt.Sprintf("runs from memory, as its copy cannot be made: %v", err)
		c.Fix = "set XDG_CACHE_HOME to a writable directory on a filesystem mounted without noexec"
		return c
	}
	c.OK, c.Detail = true, path
	return c
}

package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/devboxhq/devbox/env"
	"github.com/spf13/cobra"
)

// StatusOptions are the arguments of 'devbox status'.
type StatusOptions struct {
	F    *Factory
	JSON bool
}

// NewCmdStatus wires 'devbox status'; runF replaces the work in tests.
func NewCmdStatus(f *Factory, runF func(*StatusOptions) error) *cobra.Command {
	opts := &StatusOptions{F: f}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the project's environment: image, steps, layers, rootfs mode",
		Long: `Show what the project's environment is made of, from the local store alone
(no network, nothing built): the image and its digest, whether devbox.lock
pins it, each build step with its cache key and whether it is built, the
sizes on disk, the writable layer, whether a sandbox of the project runs (a
new run or shell joins it), and how the root filesystem is mounted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(opts)
			}
			return statusRun(opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the status as JSON")
	return cmd
}

func statusRun(opts *StatusOptions) error {
	cfg, err := opts.F.Config()
	if err != nil {
		return err
	}
	store, err := opts.F.Store()
	if err != nil {
		return err
	}
	dirs, err := opts.F.Dirs()
	if err != nil {
		return err
	}
	mode, _, err := rootFS(dirs.Data)
	if err != nil {
		return err
	}
	st, err := env.Inspect(cfg, dirs, store, mode)
	if err != nil {
		return err
	}
	out := opts.F.IO.Out
	if opts.JSON {
		return printJSON(out, st)
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "project\t%s\n", st.Project)
	fmt.Fprintf(w, "image\t%s (%s)\n", st.Image.Ref, st.Image.Platform)
	switch {
	case st.Image.Present:
		fmt.Fprintf(w, "  digest\t%s\n  layers\t%d, %s unpacked\n", st.Image.Digest, st.Image.Layers, humanBytes(st.Image.Size))
	default:
		fmt.Fprintf(w, "  digest\tnot pulled yet: 'devbox pull' or 'devbox shell'\n")
	}
	fmt.Fprintf(w, "lock\t%s\n", map[string]string{"pinned": "devbox.lock pins the image", "missing": "no devbox.lock yet"}[st.Lock])
	if len(st.Steps) == 0 && st.Image.Present {
		fmt.Fprintf(w, "steps\tnone ([tools] and [setup] are empty)\n")
	}
	for i, s := range st.Steps {
		label := ""
		if i == 0 {
			label = "steps"
		}
		state := "not built"
		if s.Built {
			state = fmt.Sprintf("built %s, %s", s.When.Format("2006-01-02 15:04"), humanBytes(s.Size))
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", label, s.Name, s.Key[:12], state)
	}
	fmt.Fprintf(w, "writable layer\t%s (%s; 'devbox reset' discards it)\n", humanBytes(st.Writable.Size), st.Writable.Path)
	if st.Running {
		fmt.Fprintf(w, "sandbox\trunning: a 'devbox run' or 'devbox shell' here joins it\n")
	} else {
		fmt.Fprintf(w, "sandbox\tnot running\n")
	}
	fmt.Fprintf(w, "rootfs\t%s\n", st.RootFS)
	fmt.Fprintf(w, "network\t%s\n", st.Network)
	fmt.Fprintf(w, "user namespace\t%s\n", st.Userns)
	if len(st.Scripts) > 0 {
		fmt.Fprintf(w, "scripts\t%v\n", st.Scripts)
	}
	return w.Flush()
}

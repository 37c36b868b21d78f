package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/devboxhq/devbox/env"
	"github.com/devboxhq/devbox/image"
	"github.com/devboxhq/devbox/templates"
	"github.com/spf13/cobra"
)

// InitOptions are the arguments of 'devbox init'.
type InitOptions struct {
	F *Factory
	// Dir is where devbox.toml is written.
	Dir string
	// Template names the template; empty means the one Detect picks.
	Template string
	// Image replaces the template's base image; empty keeps it.
	Image string
	// Force overwrites an existing devbox.toml.
	Force bool
}

// NewCmdInit wires 'devbox init'; runF replaces the work in tests.
func NewCmdInit(f *Factory, runF func(*InitOptions) error) *cobra.Command {
	opts := &InitOptions{F: f, Dir: "."}
	cmd := &cobra.Command{
		Use:   "init [DIR]",
		Short: "Write a commented devbox.toml that fits the project",
		Long: `Write devbox.toml into DIR (default: the working directory) from a template
that fits the project, then say which template it used and why. Each section
of the file says in a comment what it does; review it, then run 'devbox shell'.

The template is chosen from the files in DIR. The first match in this order
wins, so that a Go service with a package.json for its web assets gets Go:

` + templateTable() + `
--template NAME picks one instead. Every template starts from the image
` + templates.DefaultImage + ` and installs the ecosystem's tools with apt; --image names
another base image. An existing devbox.toml is kept unless --force is given.`,
		Example: `  devbox init
  devbox init ./service
  devbox init --template python
  devbox init --image 127.0.0.1:5000/debian:trixie --force`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return &FlagError{Err: fmt.Errorf("init takes one directory, not %d arguments: devbox init [DIR]", len(args))}
			}
			return nil
		},
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
			return nil, cobra.ShellCompDirectiveFilterDirs
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.Dir = args[0]
			}
			if _, ok := templates.Lookup(opts.Template); opts.Template != "" && !ok {
				return &FlagError{Err: fmt.Errorf("unknown template %q: choose one of %s", opts.Template, strings.Join(templates.Names(), ", "))}
			}
			if opts.Image != "" {
				if _, err := image.ParseSource(opts.Image); err != nil {
					return &FlagError{Err: fmt.Errorf("--image: %w", err)}
				}
			}
			if runF != nil {
				return runF(opts)
			}
			return initRun(opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Template, "template", "t", "", "template to use instead of the detected one: "+strings.Join(templates.Names(), ", "))
	cmd.Flags().StringVar(&opts.Image, "image", "", "base image to write into [image] ref (default "+templates.DefaultImage+")")
	cmd.Flags().BoolVarP(&opts.Force, "force", "f", false, "overwrite an existing devbox.toml")
	_ = cmd.RegisterFlagCompletionFunc("template", cobra.FixedCompletions(templates.Names(), cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// templateTable lists the templates and their marker files for --help, in
// detection order.
func templateTable() string {
	var b strings.Builder
	for _, t := range templates.List() {
		markers := strings.Join(t.Markers, ", ")
		if markers == "" {
			markers = "(none of the above)"
		}
		fmt.Fprintf(&b, "  %-8s %s\n", t.Name, markers)
	}
	return b.String()
}

func initRun(opts *InitOptions) error {
	switch fi, err := os.Stat(opts.Dir); {
	case errors.Is(err, fs.ErrNotExist):
		return &FlagError{Err: fmt.Errorf("%s: no such directory", opts.Dir)}
	case err != nil:
		return err
	case !fi.IsDir():
		return &FlagError{Err: fmt.Errorf("%s is not a directory", opts.Dir)}
	}
	path := filepath.Join(opts.Dir, env.FileName)
	switch _, err := os.Lstat(path); {
	case err == nil && !opts.Force:
		return &FlagError{Err: fmt.Errorf("%s already exists: use --force to overwrite it", path)}
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return err
	}
	abs, err := filepath.Abs(opts.Dir)
	if err != nil {
		return err
	}
	name, evidence := opts.Template, ""
	if name == "" {
		name, evidence = templates.Detect(opts.Dir)
	}
	src, err := templates.Render(name, templates.Data{Project: filepath.Base(abs), Image: opts.Image})
	if err != nil {
		return err
	}
	if err := writeFileAtomic(path, src); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if !opts.F.IO.Quiet {
		fmt.Fprintln(opts.F.IO.Out, initSummary(path, name, evidence, opts.Template != ""))
		fmt.Fprintln(opts.F.IO.Out, "Review it, then run 'devbox shell' to open the environment.")
	}
	return nil
}

// initSummary says which template init used and why: the --template flag,
// the file that Detect found, or the absence of any.
func initSummary(path, name, evidence string, chosen bool) string {
	t, _ := templates.Lookup(name)
	switch {
	case chosen:
		return fmt.Sprintf("%s written for a %s project (--template %s)", path, t.Title, name)
	case evidence == "":
		return fmt.Sprintf("%s written from the generic template (no project file it knows of; --template picks one)", path)
	default:
		return fmt.Sprintf("%s written for a %s project (found %s)", path, t.Title, evidence)
	}
}

// writeFileAtomic replaces path with data: a crash leaves either the old
// file or the new one, never a part of it.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	err = tmp.Chmod(0o644)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

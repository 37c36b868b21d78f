package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/devboxhq/devbox/internal/fsutil"
	"github.com/spf13/cobra"
)

// ImagesOptions are the arguments of 'devbox images'.
type ImagesOptions struct {
	F    *Factory
	JSON bool
}

// imageRow is one line of 'devbox images'.
type imageRow struct {
	Ref    string `json:"ref"`
	Digest string `json:"digest"`
	Layers int    `json:"layers"`
	// Size is the unpacked size; Shared the part in layers that other
	// images have too, and Own the rest, which removing this image frees.
	Size   int64 `json:"size"`
	Shared int64 `json:"shared"`
	Own    int64 `json:"own"`
}

// NewCmdImages wires 'devbox images'; runF replaces the work in tests.
func NewCmdImages(f *Factory, runF func(*ImagesOptions) error) *cobra.Command {
	opts := &ImagesOptions{F: f}
	cmd := &cobra.Command{
		Use:   "images",
		Short: "List the images in the local store, with shared and own sizes",
		Long: `List the images in the store: reference, manifest digest, layers and unpacked
size, split into the part shared with other images (stored once) and the
part of its own (what 'devbox gc' frees when nothing uses the image).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(opts)
			}
			return imagesRun(opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the list as JSON")
	return cmd
}

func imagesRun(opts *ImagesOptions) error {
	store, err := opts.F.Store()
	if err != nil {
		return err
	}
	imgs, err := store.Images()
	if err != nil {
		return err
	}
	users := map[string]int{}
	for _, img := range imgs {
		for _, d := range store.LayerDirs(img) {
			users[d]++
		}
	}
	sizes := map[string]int64{}
	rows := []imageRow{}
	for _, img := range imgs {
		row := imageRow{Ref: img.Ref, Digest: img.Digest.String(), Layers: len(img.Layers)}
		for _, d := range store.LayerDirs(img) {
			if _, ok := sizes[d]; !ok {
				sizes[d] = fsutil.TreeSize(d)
			}
			row.Size += sizes[d]
			if users[d] > 1 {
				row.Shared += sizes[d]
			} else {
				row.Own += sizes[d]
			}
		}
		rows = append(rows, row)
	}
	out := opts.F.IO.Out
	if opts.JSON {
		return printJSON(out, rows)
	}
	if len(rows) == 0 {
		fmt.Fprintln(out, "no images yet: 'devbox pull IMAGE', or 'devbox shell' in a project")
		return nil
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "IMAGE\tDIGEST\tLAYERS\tSIZE\tSHARED\tOWN")
	for _, r := range rows {
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\n", r.Ref, r.Digest[7:19], r.Layers, humanBytes(r.Size), humanBytes(r.Shared), humanBytes(r.Own))
	}
	return w.Flush()
}

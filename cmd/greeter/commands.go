package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/greeter/greeter/client"
	pb "github.com/greeter/greeter/proto/greeterpb"
)

func (a *app) helloCommand() *cobra.Command {
	var name string
	var age int
	cmd := &cobra.Command{
		Use:   "hello [--name NAME] [--age N]",
		Short: "Say hello",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.session(cmd, func(ctx context.Context, s *session) error {
				ctx, cancel := context.WithTimeout(ctx, a.conn.timeout)
				defer cancel()
				msg, err := s.client.Hello(ctx, name, int32(age))
				if err != nil {
					return err
				}
				return s.out.print(map[string]any{"message": msg}, msg)
			})
		},
	}
	cmd.Flags().StringVar(&name, "name", "you", "name to greet")
	cmd.Flags().IntVar(&age, "age", 0, "age to mention")
	return cmd
}

func (a *app) uploadCommand() *cobra.Command {
	var (
		as        string
		recursive bool
		tf        transferFlags
		pf        preconditionFlags
	)
	cmd := &cobra.Command{
		Use:   "upload FILE|DIR... [flags]",
		Short: "Store files (a directory: every file in it)",
		Long:  uploadLong,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.session(cmd, func(ctx context.Context, s *session) error {
				if err := tf.check(); err != nil {
					return err
				}
				jobs, single, err := uploadJobs(args, as, recursive)
				if err != nil {
					return err
				}
				pre, err := pf.options(len(jobs))
				if err != nil {
					return err
				}
				opts := append(tf.options(), pre...)
				outcomes := s.runJobs(ctx, "upload", jobs, tf.jobs, func(ctx context.Context, j job, p client.Progress) (client.Result, error) {
					return s.client.UploadFile(ctx, j.path, j.name, p, opts...)
				})
				return report(s.out, "upload", outcomes, single, func(o outcome) string {
					return fmt.Sprintf("uploaded %s: %d bytes, sha256 %s", o.res.Name, o.res.Size, o.res.SHA256)
				})
			})
		},
	}
	cmd.Flags().StringVar(&as, "as", "", "name to store a single FILE under (default its base name); with -r or a DIR, the prefix of every name")
	cmd.Flags().BoolVarP(&recursive, "r", "r", false, "upload recursively: names are paths relative to each DIR, --as their prefix")
	tf.register(cmd.Flags())
	pf.register(cmd.Flags())
	return cmd
}

func (a *app) downloadCommand() *cobra.Command {
	var (
		dest string
		tf   transferFlags
	)
	cmd := &cobra.Command{
		Use:   "download NAME... [-o PATH]",
		Short: "Fetch files",
		Long:  downloadLong,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.session(cmd, func(ctx context.Context, s *session) error {
				if err := tf.check(); err != nil {
					return err
				}
				jobs, err := downloadJobs(args, dest)
				if err != nil {
					return err
				}
				opts := tf.options()
				outcomes := s.runJobs(ctx, "download", jobs, tf.jobs, func(ctx context.Context, j job, p client.Progress) (client.Result, error) {
					return s.client.DownloadFile(ctx, j.name, j.path, p, opts...)
				})
				return report(s.out, "download", outcomes, len(jobs) == 1, func(o outcome) string {
					return fmt.Sprintf("downloaded %s to %s: %d bytes, sha256 %s", o.res.Name, o.path, o.res.Size, o.res.SHA256)
				})
			})
		},
	}
	cmd.Flags().StringVarP(&dest, "o", "o", "", "where to write the file, or the directory for several (default: base names in the current directory)")
	tf.register(cmd.Flags())
	return cmd
}

func (a *app) lsCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "ls [PREFIX]",
		Short: "List files",
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.session(cmd, func(ctx context.Context, s *session) error {
				if len(args) > 1 {
					return usageError{fmt.Errorf("ls takes at most one PREFIX")}
				}
				var prefix string
				if len(args) == 1 {
					prefix = args[0]
				}
				ctx, cancel := context.WithTimeout(ctx, a.conn.timeout)
				defer cancel()
				files, err := s.client.List(ctx, prefix)
				if err != nil {
					return err
				}
				var text strings.Builder
				rows := make([]map[string]any, len(files))
				for i, f := range files {
					rows[i] = fileJSON(f)
					fmt.Fprintf(&text, "%12d  %s  %s\n", f.GetSize(), f.GetModified().AsTime().Local().Format(time.DateTime), f.GetName())
				}
				return s.out.print(rows, strings.TrimSuffix(text.String(), "\n"))
			})
		},
	}
}

func (a *app) statCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "stat NAME",
		Short: "Describe a file",
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.session(cmd, func(ctx context.Context, s *session) error {
				if len(args) != 1 {
					return usageError{fmt.Errorf("stat takes one NAME")}
				}
				ctx, cancel := context.WithTimeout(ctx, a.conn.timeout)
				defer cancel()
				f, err := s.client.Stat(ctx, args[0])
				if err != nil {
					return err
				}
				return s.out.print(fileJSON(f), fmt.Sprintf("name:     %s\nsize:     %d\nsha256:   %s\nmodified: %s",
					f.GetName(), f.GetSize(), f.GetSha256(), f.GetModified().AsTime().Local().Format(time.RFC3339)))
			})
		},
	}
}

func (a *app) usageCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "usage",
		Short: "Show the storage you use and your quotas",
		Long:  usageLong,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.session(cmd, func(ctx context.Context, s *session) error {
				if len(args) != 0 {
					return usageError{fmt.Errorf("usage takes no arguments")}
				}
				ctx, cancel := context.WithTimeout(ctx, a.conn.timeout)
				defer cancel()
				u, err := s.client.Usage(ctx)
				if err != nil {
					return err
				}
				return s.out.print(usageJSON(u), usageText(u))
			})
		},
	}
}

func (a *app) rmCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "rm NAME",
		Short: "Delete a file",
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.session(cmd, func(ctx context.Context, s *session) error {
				if len(args) != 1 {
					return usageError{fmt.Errorf("rm takes one NAME")}
				}
				ctx, cancel := context.WithTimeout(ctx, a.conn.timeout)
				defer cancel()
				if err := s.client.Delete(ctx, args[0]); err != nil {
					return err
				}
				return s.out.print(map[string]any{"deleted": args[0]}, "deleted "+args[0])
			})
		},
	}
}

func fileJSON(f *pb.FileInfo) map[string]any {
	return map[string]any{
		"name":     f.GetName(),
		"size":     f.GetSize(),
		"sha256":   f.GetSha256(),
		"modified": f.GetModified().AsTime().UTC().Format(time.RFC3339Nano),
	}
}

// output prints results as text or, with --json, as one JSON document.
type output struct {
	w           io.Writer
	stderr      io.Writer
	json        bool
	interactive bool // draw progress bars on stderr
}

func (o *output) print(v any, text string) error {
	if o.json {
		enc := json.NewEncoder(o.w)
		return enc.Encode(v)
	}
	if text == "" {
		return nil
	}
	_, err := fmt.Fprintln(o.w, text)
	return err
}

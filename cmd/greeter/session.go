package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/client"
	"github.com/greeter/greeter/telemetry"
	"github.com/greeter/greeter/telemetry/spanattr"
)

// Attributes of the CLI's spans, beside spanattr's object and outcome.
const (
	attrCommand = attribute.Key("greeter.command")
	attrFiles   = attribute.Key("greeter.files")  // files the command moves
	attrFailed  = attribute.Key("greeter.failed") // of those, how many failed
	attrSent    = attribute.Key("greeter.bytes_sent")
	attrRecv    = attribute.Key("greeter.bytes_received")
	attrTries   = attribute.Key("greeter.attempts")
)

// session is what a command's body gets: a connected client, the output and
// the command's root span, whose context the body passes to every call so
// that each RPC (retries and resumes included) is a child of it.
type session struct {
	client *client.Client
	out    *output
	tracer trace.Tracer
}

// session applies the environment to cmd's flags, connects, opens the
// command's root span "greeter COMMAND", runs body under it and ends the
// span with the outcome before the spans are flushed.
func (a *app) session(cmd *cobra.Command, body func(context.Context, *session) error) (err error) {
	a.ran = true
	ctx := cmd.Context()
	if err := a.applyEnv(cmd.Flags()); err != nil {
		return usageError{err}
	}
	out := &output{w: a.stdout, stderr: a.stderr, json: a.conn.json}
	out.interactive = !a.conn.json && isTerminal(a.stderr)
	opts, err := a.conn.clientOptions()
	if err != nil {
		return err
	}
	// Tracing is off unless the OTEL_* variables (or a test's exporter) turn
	// it on. The console exporter writes to stderr: stdout is for results.
	tel, err := telemetry.Setup(ctx, telemetry.Config{ServiceName: "greeter", Stdout: a.stderr, SpanExporter: a.spanExporter})
	if err != nil {
		return usageError{fmt.Errorf("telemetry: %v", err)}
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		tel.Shutdown(sctx)
	}()
	tracer := tel.TracerProvider().Tracer(telemetry.ScopeName)
	ctx, span := tracer.Start(ctx, "greeter "+cmd.Name(), trace.WithAttributes(attrCommand.String(cmd.Name())))
	defer func() { endSpan(span, err) }()

	opts.DialOptions = append(opts.DialOptions, grpc.WithStatsHandler(telemetry.ClientHandler(tel)))
	c, err := client.New(a.conn.addr, opts)
	if err != nil {
		return usageError{fmt.Errorf("--addr: %w", err)}
	}
	defer c.Close()
	return body(ctx, &session{client: c, out: out, tracer: tracer})
}

// runJobs runs the transfers of a command n at a time, each under its own
// span (a child of the command's) named "greeter VERB file", and counts
// them on the command's span.
func (s *session) runJobs(ctx context.Context, verb string, jobs []job, n int, do func(context.Context, job, client.Progress) (client.Result, error)) []outcome {
	outcomes := runJobs(ctx, jobs, n, s.out.progress(len(jobs)), func(ctx context.Context, j job, p client.Progress) (client.Result, error) {
		ctx, span := s.tracer.Start(ctx, "greeter "+verb+" file", trace.WithAttributes(spanattr.ObjectName(j.name)))
		res, err := do(ctx, j, p)
		span.SetAttributes(attrSent.Int64(res.Sent), attrRecv.Int64(res.Received), attrTries.Int(res.Attempts))
		endSpan(span, err)
		return res, err
	})
	failed := 0
	for _, o := range outcomes {
		if o.err != nil {
			failed++
		}
	}
	trace.SpanFromContext(ctx).SetAttributes(attrFiles.Int(len(jobs)), attrFailed.Int(failed))
	return outcomes
}

// endSpan records how the work under span ended and ends it.
func endSpan(span trace.Span, err error) {
	span.SetAttributes(spanattr.Outcome.String(outcomeOf(err)))
	if err != nil {
		// The code's name only: a server's message may echo user input.
		span.SetStatus(otelcodes.Error, outcomeOf(err))
	} else {
		span.SetStatus(otelcodes.Ok, "")
	}
	span.End()
}

// outcomeOf names how a command or transfer ended, in the server spans'
// vocabulary: "ok", the snake_case name of the status code, "usage" for a
// usage error, "local_error" for anything else (a file that cannot be read).
func outcomeOf(err error) string {
	var tf *transferFailures
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &tf):
		err = tf.Unwrap()
	case errors.As(err, new(usageError)):
		return "usage"
	}
	st, ok := status.FromError(err)
	if !ok {
		return "local_error"
	}
	// The same spelling as the service's codeName (unexported there).
	var b strings.Builder
	for i, r := range st.Code().String() {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToLower(b.String())
}

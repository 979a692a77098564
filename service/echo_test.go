package service_test

import (
	"errors"
	"io"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/service/objname"
	"github.com/greeter/greeter/service/servicetest"
)

// maxEchoMessage bounds the status message of a rejected input, whatever
// the input's size.
const maxEchoMessage = 512

// TestRejectedInputIsNotEchoed sends 1 MiB names, prefixes, upload ids and
// page tokens of control bytes to every call that takes them
// (RELIABILITY.md R4): each is InvalidArgument naming the broken rule in a
// message under 512 bytes that shows at most a short prefix of the input,
// with a BadRequest detail naming the field and the rule, and nothing is
// written.
func TestRejectedInputIsNotEchoed(t *testing.T) {
	h := start(t, servicetest.Config{})
	huge := strings.Repeat("\x01", 1<<20)
	ctx := testCtx(t)

	calls := []struct {
		name  string
		field string       // the BadRequest field; "" when none is expected
		rule  objname.Rule // the rule the message names; "" for fixed messages
		call  func() error
	}{
		{"StatFile name", "filename", objname.RuleTooLong, func() error {
			_, err := h.Client.StatFile(ctx, &pb.MetaData{Filename: huge})
			return err
		}},
		{"DeleteFile name", "filename", objname.RuleTooLong, func() error {
			_, err := h.Client.DeleteFile(ctx, &pb.MetaData{Filename: huge})
			return err
		}},
		{"DownloadFile name", "filename", objname.RuleTooLong, func() error {
			s, err := h.Client.DownloadFile(ctx, &pb.MetaData{Filename: huge})
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		}},
		{"UploadFile name", "filename", objname.RuleTooLong, func() error {
			s, err := h.Client.UploadFile(ctx)
			if err != nil {
				return err
			}
			md := &pb.MetaData{Filename: "x", Extension: huge}
			if err := s.Send(&pb.UploadFileRequest{Request: &pb.UploadFileRequest_Metadata{Metadata: md}}); err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			_, err = s.CloseAndRecv()
			return err
		}},
		{"StatFile short name with a control byte", "filename", objname.RuleControl, func() error {
			_, err := h.Client.StatFile(ctx, &pb.MetaData{Filename: "a\x1b[31mb"})
			return err
		}},
		{"ListFiles prefix", "prefix", objname.RuleTooLong, func() error {
			_, err := h.Client.ListFiles(ctx, &pb.ListFilesRequest{Prefix: huge})
			return err
		}},
		{"ListFiles short prefix with a control byte", "prefix", objname.RuleControl, func() error {
			_, err := h.Client.ListFiles(ctx, &pb.ListFilesRequest{Prefix: "a\nb"})
			return err
		}},
		{"ListFiles page token", "", "", func() error {
			_, err := h.Client.ListFiles(ctx, &pb.ListFilesRequest{PageToken: huge})
			return err
		}},
		{"QueryUpload upload id", "", "", func() error {
			_, err := h.Client.QueryUpload(ctx, &pb.QueryUploadRequest{UploadId: huge})
			return err
		}},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			st := status.Convert(c.call())
			if st.Code() != codes.InvalidArgument {
				t.Fatalf("got %v with a %d-byte message, want InvalidArgument", st.Code(), len(st.Message()))
			}
			if n := len(st.Message()); n >= maxEchoMessage {
				t.Errorf("message is %d bytes, want under %d: %.200q…", n, maxEchoMessage, st.Message())
			}
			if strings.Count(st.Message(), `\x01`) > objname.QuoteLen {
				t.Errorf("message echoes more than %d bytes of the input: %.200q…", objname.QuoteLen, st.Message())
			}
			if c.rule == "" {
				return
			}
			if want := "(rule " + string(c.rule) + ")"; !strings.Contains(st.Message(), want) {
				t.Errorf("message %q does not name the rule: want %q in it", st.Message(), want)
			}
			wantViolation(t, st, c.field, c.rule)
		})
	}
	h.assertNothingStored(servicetest.DefaultOwner)
}

// wantViolation checks that st carries a BadRequest whose only field
// violation names field and rule.
func wantViolation(t *testing.T, st *status.Status, field string, rule objname.Rule) {
	t.Helper()
	for _, d := range st.Details() {
		br, ok := d.(*errdetails.BadRequest)
		if !ok {
			continue
		}
		v := br.GetFieldViolations()
		if len(v) != 1 || v[0].GetField() != field || v[0].GetReason() != string(rule) || v[0].GetDescription() == "" {
			t.Errorf("got field violations %v, want one for %s with reason %s", v, field, rule)
		}
		return
	}
	t.Errorf("got details %v, want a BadRequest", st.Details())
}

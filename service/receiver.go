package service

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/greeter/greeter/proto/greeterpb"
)

// receiver reads an upload stream on its own goroutine so that the handler
// can give up on a stream that stays silent: grpc-go has no per-stream
// inactivity timeout (MaxConnectionIdle ignores active streams), and RecvMsg
// cannot be interrupted except by ending the RPC. When the handler returns,
// grpc-go ends the stream, RecvMsg fails and the goroutine exits.
//
// The goroutine also pipelines: it decodes the next chunk while the handler
// writes the previous one, holding at most one message in hand.
type receiver struct {
	ctx   context.Context
	idle  time.Duration
	timer *time.Timer
	msgs  chan received
	done  chan struct{}
}

type received struct {
	msg *pb.UploadFileRequest
	err error
}

func newReceiver(ctx context.Context, stream pb.Greeter_UploadFileServer, idle time.Duration) *receiver {
	r := &receiver{
		ctx:   ctx,
		idle:  idle,
		timer: time.NewTimer(idle),
		msgs:  make(chan received),
		done:  make(chan struct{}),
	}
	go r.loop(stream)
	return r
}

func (r *receiver) loop(stream pb.Greeter_UploadFileServer) {
	for {
		msg := new(pb.UploadFileRequest)
		err := stream.RecvMsg(msg)
		select {
		case r.msgs <- received{msg, err}:
		case <-r.done:
			return
		}
		if err != nil {
			return
		}
	}
}

// next returns the next message, io.EOF at the end of the stream, the
// stream's error, or DeadlineExceeded when nothing arrives for the idle
// timeout.
func (r *receiver) next() (*pb.UploadFileRequest, error) {
	r.timer.Reset(r.idle)
	select {
	case got := <-r.msgs:
		return got.msg, got.err
	case <-r.timer.C:
		return nil, status.Errorf(codes.DeadlineExceeded, "upload idle: no message for %s", r.idle)
	case <-r.ctx.Done():
		return nil, r.ctx.Err()
	}
}

// stop releases the receiving goroutine once the handler is done.
func (r *receiver) stop() {
	r.timer.Stop()
	close(r.done)
}

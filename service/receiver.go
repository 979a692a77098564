package service

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/proto/wire/codec"
)

// receiveDepth is the number of upload messages the receiving goroutine may
// hold decoded ahead of the handler, besides the one being written. One
// lets receiving overlap writing; two measured no faster (bench/compare,
// see the commit that set it).
const receiveDepth = 1

// receiver reads an upload stream on its own goroutine so that the handler
// can give up on a stream that stays silent: grpc-go has no per-stream
// inactivity timeout (MaxConnectionIdle ignores active streams), and RecvMsg
// cannot be interrupted except by ending the RPC. When the handler returns,
// grpc-go ends the stream, RecvMsg fails and the goroutine exits.
//
// The goroutine also pipelines: it decodes the next chunks while the
// handler writes the previous one. Messages cycle through a fixed set of
// receiveDepth+1 codec.UploadFileRequest values, so that, with the codec
// forced on the server, receiving allocates nothing per chunk and holds at
// most receiveDepth+1 chunk buffers.
type receiver struct {
	ctx   context.Context
	idle  time.Duration
	timer *time.Timer
	msgs  chan received
	free  chan *codec.UploadFileRequest
	done  chan struct{}
}

type received struct {
	msg *codec.UploadFileRequest
	err error
}

func newReceiver(ctx context.Context, stream pb.Greeter_UploadFileServer, idle time.Duration) *receiver {
	r := &receiver{
		ctx:   ctx,
		idle:  idle,
		timer: time.NewTimer(idle),
		msgs:  make(chan received, receiveDepth),
		free:  make(chan *codec.UploadFileRequest, receiveDepth+1),
		done:  make(chan struct{}),
	}
	for range receiveDepth + 1 {
		r.free <- new(codec.UploadFileRequest)
	}
	go r.loop(stream)
	return r
}

func (r *receiver) loop(stream pb.Greeter_UploadFileServer) {
	for {
		var msg *codec.UploadFileRequest
		select {
		case msg = <-r.free:
		case <-r.done:
			return
		}
		err := stream.RecvMsg(msg)
		if err == nil {
			err = msg.Err()
		}
		select {
		case r.msgs <- received{msg, err}:
		case <-r.done:
			msg.Reset()
			return
		}
		if err != nil {
			return
		}
	}
}

// next returns the next message, io.EOF at the end of the stream, the
// stream's error, or DeadlineExceeded when nothing arrives for the idle
// timeout. The caller hands the message back with release once it is done
// with its chunk.
func (r *receiver) next() (*codec.UploadFileRequest, error) {
	r.timer.Reset(r.idle)
	select {
	case got := <-r.msgs:
		if got.err != nil {
			r.release(got.msg)
			return nil, got.err
		}
		return got.msg, nil
	case <-r.timer.C:
		return nil, status.Errorf(codes.DeadlineExceeded, "upload idle: no message for %s", r.idle)
	case <-r.ctx.Done():
		return nil, r.ctx.Err()
	}
}

// release returns the chunk buffer of msg to the pool and msg to the
// receiving goroutine.
func (r *receiver) release(msg *codec.UploadFileRequest) {
	msg.Reset()
	r.free <- msg // never blocks: there are only as many messages as room
}

// stop releases the receiving goroutine once the handler is done, and the
// chunk buffers of the messages it decoded ahead.
func (r *receiver) stop() {
	r.timer.Stop()
	close(r.done)
	for {
		select {
		case got := <-r.msgs:
			got.msg.Reset()
		default:
			return
		}
	}
}

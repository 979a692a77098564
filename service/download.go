package service

import (
	"encoding/hex"
	"errors"
	"io"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/proto/wire"
	"github.com/greeter/greeter/proto/wire/codec"
	"github.com/greeter/greeter/service/objname"
)

// DownloadFile streams a stored file, or the range offset..offset+limit of
// it. The size and SHA-256 of the whole file are sent as header metadata
// before the first chunk.
func (s *Server) DownloadFile(md *pb.MetaData, stream pb.Greeter_DownloadFileServer) (err error) {
	ctx := stream.Context()
	defer recordOutcome(ctx, &err)
	owner, err := s.owner(ctx)
	if err != nil {
		return err
	}
	name, err := objectName(md)
	if err != nil {
		return err
	}
	offset, limit := md.GetOffset(), md.GetLimit()
	if offset < 0 {
		return status.Errorf(codes.InvalidArgument, "offset must not be negative, got %d", offset)
	}
	if limit < 0 {
		return status.Errorf(codes.InvalidArgument, "limit must not be negative, got %d", limit)
	}

	tr := s.startTransfer(ctx, directionDownload, owner, name)
	defer tr.end()
	f, err := s.store.Open(ctx, owner, name)
	if err != nil {
		return s.toStatus(ctx, name, err)
	}
	closeFile := true // until the sending goroutine takes the file over
	defer func() {
		if closeFile {
			f.Close()
		}
	}()
	info := f.Info()
	if offset > info.Size {
		return status.Errorf(codes.OutOfRange, "offset %d is past the end of %s (%d bytes)", offset, objname.Quote(name), info.Size)
	}
	end := info.Size
	if limit > 0 && limit < end-offset {
		end = offset + limit
	}
	header := metadata.Pairs(wire.HeaderSize, strconv.FormatInt(info.Size, 10), wire.HeaderSHA256, hex.EncodeToString(info.SHA256[:]))
	if err := stream.SendHeader(header); err != nil {
		return s.toStatus(ctx, name, err)
	}

	// The sending runs on its own goroutine so that the handler can give up
	// on a client that stops reading: SendMsg blocks on flow control and only
	// the end of the RPC unblocks it. The goroutine owns the file and the
	// buffer and releases them when its Send fails after the RPC ended.
	progress := make(chan struct{}, 1)
	result := make(chan error, 1)
	closeFile = false
	go func() {
		defer f.Close()
		result <- s.sendRange(stream, f, name, offset, end, tr, progress)
	}()
	stall := time.NewTimer(s.opts.IdleTimeout)
	defer stall.Stop()
	for {
		select {
		case err := <-result:
			return err
		case <-progress:
			stall.Reset(s.opts.IdleTimeout)
		case <-stall.C:
			return status.Errorf(codes.DeadlineExceeded, "download stalled: the client read nothing for %s", s.opts.IdleTimeout)
		}
	}
}

// sendRange streams bytes offset..end of f, counting them in tr and
// signalling progress after each message without ever blocking on it.
func (s *Server) sendRange(stream pb.Greeter_DownloadFileServer, f File, name string, offset, end int64, tr *transfer, progress chan<- struct{}) error {
	ctx := stream.Context()
	// Each message gets its own pooled buffer: with the codec forced on the
	// server, grpc sends the buffer itself (no copy into a marshal buffer)
	// and returns it to the pool once written, so it cannot be reused here.
	// With grpc's proto codec the message is encoded by the time SendMsg
	// returns and Reset puts the buffer back at once.
	var resp codec.FileResponse
	defer resp.Reset()
	for off := offset; off < end; {
		buf := codec.Buffer(int(min(int64(s.opts.ChunkSize), end-off)))
		n, err := f.ReadAt(*buf, off)
		if n > 0 {
			*buf = (*buf)[:n]
			resp.SetChunk(buf)
			if err := stream.SendMsg(&resp); err != nil {
				return s.toStatus(ctx, name, err)
			}
			resp.Reset()
			off += int64(n)
			tr.add(n)
			select {
			case progress <- struct{}{}:
			default:
			}
		} else {
			codec.PutBuffer(buf)
		}
		if errors.Is(err, io.EOF) && off < end {
			return status.Errorf(codes.DataLoss, "%s shrank while it was being read", objname.Quote(name))
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return s.toStatus(ctx, name, err)
		}
	}
	return nil
}

package service

import (
	"context"
	"encoding/base64"
	"encoding/hex"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/service/objname"
	"github.com/greeter/greeter/telemetry/spanattr"
)

// ListFiles lists the caller's files whose names start with a prefix.
func (s *Server) ListFiles(ctx context.Context, req *pb.ListFilesRequest) (*pb.ListFilesResponse, error) {
	owner, err := s.owner(ctx)
	if err != nil {
		return nil, err
	}
	if err := objname.ValidatePrefix(req.GetPrefix()); err != nil {
		return nil, invalidInput("prefix", "prefix", req.GetPrefix(), err)
	}
	size := int(req.GetPageSize())
	switch {
	case size < 0:
		return nil, status.Errorf(codes.InvalidArgument, "page_size must not be negative, got %d", size)
	case size == 0:
		size = DefaultListPageSize
	case size > MaxListPageSize:
		size = MaxListPageSize
	}
	var after string
	if tok := req.GetPageToken(); tok != "" {
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || objname.Validate(string(raw)) != nil {
			return nil, status.Error(codes.InvalidArgument, "invalid page_token")
		}
		after = string(raw)
	}
	infos, err := s.store.List(ctx, owner, req.GetPrefix(), after, size+1)
	if err != nil {
		return nil, s.toStatus(ctx, req.GetPrefix(), err)
	}
	resp := &pb.ListFilesResponse{}
	if len(infos) > size {
		infos = infos[:size]
		resp.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte(infos[size-1].Name))
	}
	resp.Files = make([]*pb.FileInfo, len(infos))
	for i, info := range infos {
		resp.Files[i] = fileInfo(info)
	}
	return resp, nil
}

// StatFile describes one of the caller's files.
func (s *Server) StatFile(ctx context.Context, md *pb.MetaData) (*pb.FileInfo, error) {
	owner, err := s.owner(ctx)
	if err != nil {
		return nil, err
	}
	name, err := objectName(md)
	if err != nil {
		return nil, err
	}
	info, err := s.store.Stat(ctx, owner, name)
	if err != nil {
		return nil, s.toStatus(ctx, name, err)
	}
	return fileInfo(info), nil
}

// DeleteFile removes one of the caller's files.
func (s *Server) DeleteFile(ctx context.Context, md *pb.MetaData) (*pb.StringResponse, error) {
	owner, err := s.owner(ctx)
	if err != nil {
		return nil, err
	}
	name, err := objectName(md)
	if err != nil {
		return nil, err
	}
	if err := s.store.Delete(ctx, owner, name); err != nil {
		return nil, s.toStatus(ctx, name, err)
	}
	return &pb.StringResponse{Message: "Deleted"}, nil
}

// QueryUpload reports the committed size of one of the caller's incomplete
// resumable uploads. Once an upload completed it is forgotten: QueryUpload
// answers NotFound, like for an upload that never existed or expired, and
// complete is never set. One exception: if the store committed the upload
// but could not forget it (the answer to the final UploadFile was lost in a
// crash), QueryUpload reports the full size until a stream resumes at that
// size, which then answers with the committed file's info.
func (s *Server) QueryUpload(ctx context.Context, req *pb.QueryUploadRequest) (*pb.UploadStatus, error) {
	owner, err := s.owner(ctx)
	if err != nil {
		return nil, err
	}
	rs, err := s.resumableStore()
	if err != nil {
		return nil, err
	}
	id := req.GetUploadId()
	if err := ValidateUploadID(id); err != nil {
		return nil, s.toStatus(ctx, "", err)
	}
	trace.SpanFromContext(ctx).SetAttributes(spanattr.Owner.String(owner), spanattr.UploadID.String(id))
	committed, err := rs.QueryResumable(ctx, owner, id, s.opts.ResumableTTL)
	if err != nil {
		return nil, s.toStatus(ctx, "", err)
	}
	return &pb.UploadStatus{UploadId: id, CommittedSize: committed}, nil
}

// GetUsage reports what the caller stores, incomplete uploads included at
// what they set aside, and its quota.
func (s *Server) GetUsage(ctx context.Context, _ *pb.UsageRequest) (*pb.Usage, error) {
	owner, err := s.owner(ctx)
	if err != nil {
		return nil, err
	}
	u, err := s.store.Usage(ctx, owner)
	if err != nil {
		return nil, s.toStatus(ctx, "", err)
	}
	return &pb.Usage{Bytes: u.Bytes, Objects: u.Objects, QuotaBytes: u.Quota.Bytes, QuotaObjects: u.Quota.Objects}, nil
}

// fileInfo is the wire form of info.
func fileInfo(info FileInfo) *pb.FileInfo {
	out := &pb.FileInfo{Name: info.Name, Size: info.Size, Modified: timestamppb.New(info.Modified)}
	if info.SHA256 != ([32]byte{}) {
		out.Sha256 = hex.EncodeToString(info.SHA256[:])
	}
	return out
}

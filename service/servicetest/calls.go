package servicetest

import (
	"context"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// Call reports that the handler of an RPC started or returned. The reports
// are taken outside the Config interceptors: Err is what the client is
// sent.
type Call struct {
	// Method is the full method, as in pb.Greeter_UploadFile_FullMethodName.
	Method string
	// Header is the metadata the client sent.
	Header metadata.MD
	// Done is false when the call starts and true when it returned.
	Done bool
	// Err is the error the call returned, when Done.
	Err error
}

// Await waits for a report that match accepts and returns the oldest such
// report not returned before. Reports are kept until Await returns them.
// It fails only when ctx ends first.
func (s *Server) Await(ctx context.Context, match func(Call) bool) (Call, error) {
	return s.calls.await(ctx, match)
}

// WaitHandled waits until a call of method has returned that no earlier
// WaitHandled or Await returned: one call per WaitHandled, in order.
func (s *Server) WaitHandled(ctx context.Context, method string) error {
	_, err := s.calls.await(ctx, func(c Call) bool { return c.Done && c.Method == method })
	return err
}

// Idle returns a channel that is closed once no call of method is running.
// It is already closed if none is running now.
func (s *Server) Idle(method string) <-chan struct{} {
	return s.calls.idleChan(method)
}

// callLog collects the reports of calls. It never blocks the server.
type callLog struct {
	mu      sync.Mutex
	reports []Call
	changed chan struct{} // closed, and replaced, when a report arrives
	running map[string]int
	idle    map[string]chan struct{} // closed when running[method] drops to 0
}

func newCallLog() *callLog {
	return &callLog{changed: make(chan struct{}), running: map[string]int{}, idle: map[string]chan struct{}{}}
}

func (l *callLog) report(c Call) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reports = append(l.reports, c)
	close(l.changed)
	l.changed = make(chan struct{})
	if !c.Done {
		if l.running[c.Method] == 0 {
			l.idle[c.Method] = make(chan struct{})
		}
		l.running[c.Method]++
		return
	}
	l.running[c.Method]--
	if l.running[c.Method] == 0 {
		close(l.idle[c.Method])
		delete(l.idle, c.Method)
	}
}

func (l *callLog) await(ctx context.Context, match func(Call) bool) (Call, error) {
	for {
		l.mu.Lock()
		for i, c := range l.reports {
			if match(c) {
				l.reports = append(l.reports[:i:i], l.reports[i+1:]...)
				l.mu.Unlock()
				return c, nil
			}
		}
		changed := l.changed
		l.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return Call{}, ctx.Err()
		}
	}
}

func (l *callLog) idleChan(method string) <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ch, ok := l.idle[method]; ok {
		return ch
	}
	done := make(chan struct{})
	close(done)
	return done
}

// unary and stream report every call; they are the outermost interceptors.
func (l *callLog) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	l.report(Call{Method: info.FullMethod, Header: md})
	resp, err := next(ctx, req)
	l.report(Call{Method: info.FullMethod, Header: md, Done: true, Err: err})
	return resp, err
}

func (l *callLog) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) error {
	md, _ := metadata.FromIncomingContext(ss.Context())
	l.report(Call{Method: info.FullMethod, Header: md})
	err := next(srv, ss)
	l.report(Call{Method: info.FullMethod, Header: md, Done: true, Err: err})
	return err
}

package s3store

import (
	"context"
	"errors"

	"github.com/greeter/greeter/coordination"
)

// errLeaseLost is the cause of a resumable upload's context when its lease
// was lost.
var errLeaseLost = errors.New("s3store: upload lease lost")

// watch makes lease the upload's and, if the lease can be lost, starts the
// goroutine that ends the upload when it is: it cuts a part upload in
// flight short, waits for the stream's call in progress, breaks the upload
// with ErrUploadBusy without writing its state again (the new holder may
// have read it already) and releases the lease, so that the new holder
// need not wait out the takeover bound. The goroutine ends with the upload,
// or with the request that began it.
func (r *resumable) watch(lease coordination.Lease) {
	r.lease = lease
	lost := lease.Lost()
	if lost == nil {
		return
	}
	go func() {
		select {
		case <-lost:
		case <-r.stopped:
			return
		case <-r.ctx.Done():
			return
		}
		r.cancel(errLeaseLost)
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.done {
			return
		}
		r.breakWith(busy(r.id))
		r.release()
	}()
}

// lost reports whether the upload's lease was lost.
func (r *resumable) lost() bool {
	if r.lease == nil {
		return false
	}
	select {
	case <-r.lease.Lost():
		return true
	default:
		return false
	}
}

// orLost returns ErrUploadBusy in place of err if the lease was lost
// meanwhile (err is then most likely the part upload it cut short).
func (r *resumable) orLost(err error) error {
	if errors.Is(context.Cause(r.ctx), errLeaseLost) || r.lost() {
		return busy(r.id)
	}
	return err
}

package storetest

import (
	"crypto/sha256"

	"github.com/greeter/greeter/service"
)

// resumableLostCommitAnswer commits an upload whose answer is lost
// (Storage.LoseCommitAnswer puts back what the store sees when it died
// between publishing the file and forgetting the upload): the client's
// retry learns that the upload completed. QueryResumable reports the whole
// size; a resume at an older offset is sent to the end with
// ErrOffsetMismatch; a resume at the end takes no bytes, and its Commit
// answers what the lost one would have, without checking CreateOnly again
// (the file is the upload's own), and forgets the upload.
func resumableLostCommitAnswer(e *env) {
	if e.st.LoseCommitAnswer == nil {
		e.t.Skip("storetest: the harness cannot lose a commit's answer (Storage.LoseCommitAnswer is nil); not tested")
	}
	b := data(2*e.block()+7, 14)
	size := int64(len(b))
	want := expect(b)
	want.CreateOnly = true
	up := e.begin(alice, resume("lost", "dir/lost.bin", b, 0))
	if err := write(up, b); err != nil {
		e.t.Fatal(err)
	}
	restore := e.st.LoseCommitAnswer(e.t, alice, "lost")
	first, err := up.Commit(e.ctx, want)
	if err != nil {
		e.t.Fatalf("Commit = %v", err)
	}
	restore(e.t)

	e.wantCommitted(alice, "lost", 0, size)
	_, err = e.s.BeginResumable(e.ctx, alice, resume("lost", "dir/lost.bin", b, e.kept(size/2)))
	e.wantUploadErr("BeginResumable at an older offset", err, "lost", service.ErrOffsetMismatch, size)
	_, err = e.s.BeginResumable(e.ctx, alice, resume("lost", "dir/other.bin", b, size))
	e.wantUploadErr("BeginResumable for another name", err, "lost", service.ErrUploadMismatch, -1)

	again := e.begin(alice, resume("lost", "dir/lost.bin", b, size))
	if _, err := again.Write([]byte("x")); err == nil {
		e.t.Fatal("Write of a byte past the end of a completed upload = nil, want an error")
	}
	info, err := again.Commit(e.ctx, want)
	if err != nil {
		e.t.Fatalf("Commit of the retry = %v, want the lost answer", err)
	}
	if info.Name != first.Name || info.Size != size || info.SHA256 != sha256.Sum256(b) {
		e.t.Fatalf("Commit of the retry = %+v, want the lost answer %+v", info, first)
	}
	e.wantFile(alice, "dir/lost.bin", b)
	e.wantNoUpload(alice, "lost", 0)
}

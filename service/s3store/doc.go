// Package s3store is a service.ResumableStore in a bucket of an
// S3-compatible object store (AWS S3, MinIO, Ceph RGW, R2, ...). It talks
// S3 through minio-go; any number of processes may share a bucket and
// prefix, and a resumable upload begun on one can be resumed on any other.
//
// # Layout
//
// Every key starts with Options.Prefix. <owner> is the owner in lower-case
// unpadded base32, exactly as the disk store names owner folders.
//
//	objects/<owner>/<name>       committed files, one object each, with user
//	                             metadata X-Amz-Meta-Greeter-Sha256 (the
//	                             whole file's SHA-256, hex) and
//	                             X-Amz-Meta-Greeter-Size; Stat is one HEAD.
//	uploads/<owner>/<id>.json    the state of resumable upload <id>.
//	tmp/<random hex>             plain uploads larger than one part, while
//	                             they are staged; probes of Open.
//
// S3 limits keys to 1024 bytes: a name whose key would be longer is refused
// with an *objname.Error, so the longest name depends on the prefix and the
// owner.
//
// # Plain uploads
//
// Parts stream: each part's bytes go on to PutObjectPart through an
// io.Pipe as they arrive (partStream), so receiving and sending overlap
// and no part is held in memory. S3 wants a part's length before its
// bytes, so this needs the file's size: a resumable upload declares it,
// and so does a plain upload created with CreateSized (greeterd uses it
// when the client declares a size). A plain upload of unknown size (Create)
// keeps one part buffer instead (Options.PartSize, 16 MiB by default, from
// a pool, grown from 4 KiB as bytes come) and never more of the file; a
// file that fits in it is put with one PutObject at Commit. A body that
// cannot be rewound is not retried by the client library: a part that
// fails fails its upload (a resumable one is resumed from its last
// committed part). A file larger than one part goes, part by part, into a
// multipart upload on a tmp/ key; Commit completes it and copies it
// server-side to its key with its metadata (its SHA-256 is known only at
// the end, and S3 takes metadata only when an object is created), then
// removes the staged object. The copy is one CopyObject, or, when the
// upload has a precondition (CopyObject takes none on its destination) or
// exceeds 5 GiB, a multipart copy whose completion carries it. Either way the file appears in one step,
// replacing any previous version; a failed or cancelled upload aborts its
// multipart upload and leaves nothing. A part whose bytes have all gone
// settles (waits for the store's answer, which MinIO gives only once it has
// stored the part) on its own goroutine while the next part streams; an
// upload has at most one part settling and waits for it before the next
// one settles, at Commit and when it lets go. At most
// Options.MaxConcurrentParts part uploads run at once in a process; an
// upload waits for a slot at the start of a part and holds it until the
// part is stored.
//
// # Resumable uploads
//
// A resumable upload is one multipart upload on the file's key, started
// with the declared size and SHA-256 as its metadata, with fixed-size
// parts: every part but the last is exactly the upload's part size. Its
// authoritative state is the object uploads/<owner>/<id>.json: name,
// declared size and SHA-256, the S3 upload ID, the part size, the
// committed size, the part numbers and ETags, the SHA-256 state after the
// committed bytes (crypto/sha256's MarshalBinary), the next part number,
// the stream holding it, and times. The committed size is never derived
// from ListParts.
//
// The committed size is always the end of the last whole part. Each part
// streams to the store as it arrives, hashed on the way; once its last
// byte has gone it settles while the next part streams: when the store
// answers with its ETag, the state is advanced to count it, with the
// SHA-256 state after it. The next part's end, Suspend and Commit wait for
// that, so the state saved last is always known to the stream; the part's
// request and state write outlive the stream's request by up to
// cleanupTimeout, so a client that goes away just after a part's end still
// has it counted. The file's
// last part, if shorter, streams too and is kept for Commit. Bytes past the last whole part are not kept when a stream ends
// or breaks: QueryResumable reports the end of the last whole part and the
// client sends the rest again (at most one part; two if the process died
// while a part settled), so no short part is ever
// made. (The alternative, spooling the tail to a side object as tusd does,
// costs two more requests per suspension and a second source of bytes.)
//
// Every change of the state is a conditional write: creation with
// If-None-Match: *, every update with If-Match on the ETag the writer read
// or wrote last. Of two writers, only one can ever advance the state; the
// other's write fails and it gets service.ErrUploadBusy (Aborted), as does
// a stream whose multipart upload is gone. A resumed upload whose
// multipart upload the store no longer knows (a lifecycle rule, MinIO's
// own purge; one ListParts with at most one part probes it, for existence
// only) is no upload: its state is dropped and the client starts again at
// offset 0. Resuming claims the upload by
// such a write, so a stream on a replica that died, or that still runs,
// loses it at its next part; the new stream uses part numbers past the
// one the old stream may still be uploading, so no recorded part is ever
// overwritten. Open checks that the server honours these conditions and
// refuses to start if it does not.
//
// Commit verifies the whole file from the saved SHA-256 state plus the
// bytes since, proves by a conditional write that the stream still holds
// the upload, completes the multipart upload with the last part (which
// publishes the file in one step) and deletes the state. A digest
// mismatch aborts the multipart upload, deletes the state and answers
// service.ErrDigestMismatch, as the disk store does; too few bytes
// suspend the upload with service.ErrSizeMismatch.
//
// A commit's answer can be lost after CompleteMultipartUpload took effect
// (the store or the replica died at that moment): the state is still
// there, and the multipart upload is gone. So the state records a random
// nonce that the multipart upload carries as metadata (Greeter-Upload),
// and the file's object shows it once the upload completed. A state whose
// multipart upload is gone while the file carries its nonce, size and
// SHA-256 is a completed upload: QueryResumable reports the whole size, a
// resume at the end takes no bytes and its Commit answers with the file's
// info (without checking CreateOnly or IfMatch again: the file is this
// upload's) and deletes the state, and a resume anywhere else gets
// ErrOffsetMismatch at the end. A CompleteMultipartUpload that gets
// NoSuchUpload (minio-go's retry of a request whose answer it lost) checks
// the same and succeeds. Any other vanished multipart upload starts over.
//
// # Upload leases
//
// A stream holds its upload's lease, from Options.Leases, from
// BeginResumable until Commit, Abort or Suspend. With the default,
// in-process leases (coordination.LocalLeases), a second stream of this
// process gets ErrUploadBusy at once, as on the disk store, and one on
// another replica takes over by the conditional write alone. With leases
// shared through Redis (redislease), a second stream on any replica asks
// the holder to let go and takes over within the leases' bound (3 s by
// default), even from a replica that died; the holder's part upload in
// flight is cut short, it writes no more state, and its stream ends with
// ErrUploadBusy (Aborted).
//
// The lease is never the fence: a writer that missed its loss (Redis was
// unreachable from it) still fails at its next state write. So while
// Redis is down, leases are granted without it and the conditional writes
// alone decide, as without shared leases: the state object's ETag already
// admits one winner, and the lease only makes takeover prompt and spares
// the loser's wasted parts. No upload is lost or corrupted because Redis
// stopped or restarted.
//
// # Preconditions
//
// Commit checks Expect.CreateOnly and Expect.IfMatch against a HEAD of the
// key and then has the server check them again, atomically with the write
// that publishes the file (PutObject, CompleteMultipartUpload): CreateOnly
// sends If-None-Match: *, IfMatch compares the SHA-256 metadata of the
// object there with the wanted one and sends If-Match on that object's
// ETag, so a replacement in between fails the write. A failed condition
// (412, or AWS's 409 ConditionalRequestConflict) gives service.ErrExists
// or service.ErrNotMatched; a failed resumable commit is aborted. Within
// one process, commits and deletes of one key take turns.
//
// # Folders
//
// A name cannot be a file where another name needs a folder: uploading
// "a/b" while "a" is a file, or "a" while "a/b" is, fails with
// service.ErrConflict, as on the disk store. S3 would store both, but
// MinIO stores them and then leaves the keys below the object "a" out of
// every listing, hiding files from List and from the usage count. Commit
// (and BeginResumable, early) heads the key of every folder of the name
// and lists one key below it; replicas that commit "a" and "a/b" at the
// same moment can still both succeed.
//
// # Usage and quotas
//
// An owner's usage is its committed objects (their sizes, one object
// each) plus its incomplete resumable uploads at their declared size (less
// the size of the file each replaces, and one object unless it replaces
// one), plus, in the process receiving them, the bytes of plain uploads
// (see usage.go). The quotas, from Options.Quotas, are enforced as on the
// disk store, with the same *service.QuotaError: the objects quota at
// Create and BeginResumable, the bytes quota at BeginResumable (the
// declared size) and while a plain upload streams (leased 1 MiB ahead),
// and both at Commit, before the write that publishes the file.
//
// The figure is kept in a coordination.Usage. Options.Usage may give one
// that replicas share, such as redisusage's (a Redis hash per owner,
// holds reserved by one Lua script that checks the quota): then the sum
// over all replicas is enforced, and the figure is reconciled from this
// store's listing (the tally described next) when Redis lacks it or it is
// older than a few minutes, so that drift from crashes and races is
// bounded (see that package). While Redis is down it falls back to the
// in-process counter, which is the default:
//
// The in-process counter keeps the figure in memory per owner on each
// process. It is computed at the owner's first use
// by listing its states and then its objects, page by page, and updated by
// this process's commits, deletes, aborts and expiries. With several
// replicas it drifts: a replica does not see what the others commit,
// delete or begin until it lists again, and a commit that races a listing
// may be counted twice. It is reconciled by listing again at the next use
// once it is older than Options.UsageMaxAge (5 minutes by default), and at
// once when it refuses an upload and is older than 10 seconds, so that an
// owner is not refused for what another replica freed. Between
// reconciliations an owner writing through several replicas can exceed a
// quota by what the other replicas admitted meanwhile. A listing that
// fails keeps the figure it was to replace (an owner never counted gets
// the error). Owners without a quota are counted only once their usage is
// asked for.
//
// CleanExpiredUploads, from any replica and idempotently, aborts the
// multipart uploads of states not written for the TTL and deletes them,
// deletes unusable states, and aborts multipart uploads under the prefix
// that no state names once they are older than the TTL (a crash between
// starting one and writing its state, a plain upload whose process died).
// CleanTemporaries removes staged objects a crash left under tmp/.
// Aborting is also what S3 bucket lifecycle rules
// (AbortIncompleteMultipartUpload) do; they are a good second line.
//
// # Reading
//
// Open heads the object and pins its ETag. ReadAt reads with ranged GETs
// of up to 32 MiB that carry If-Match; sequential reads are served by a
// readahead that fills the next 2 MiB window from the open GET into a
// second buffer while the current one is read (one window ahead: two
// buffers per open file, from a pool), and a jump starts a new readahead.
// A GET's answer waits half read for a free buffer for at most 100 ms;
// then the GET is closed and the next window gets a new one: MinIO holds a
// lock on an object until it has written a GET's whole answer, which would
// keep a replacement or delete of the file waiting, up to 30 s. If the
// file is replaced or deleted while it is read, the next GET fails and
// ReadAt returns service.ErrChanged (Aborted: the client's retry sees the
// new digest and stops); bytes of two versions are never mixed, and a
// server that ignored If-Match is caught by comparing ETags. List
// asks for one page of keys after the continuation name, never a whole
// prefix; it reports each SHA-256 when the server returns user metadata in
// listings (MinIO does), and leaves it zero otherwise.
//
// # Failures
//
// No answer from the server (refused, reset, timed out, TLS), a 5xx or
// throttling answer, refused credentials (unknown key, bad signature,
// expired token, access denied) and a missing bucket all wrap
// service.ErrUnavailable (Unavailable), with a message that names the
// problem and never a secret. Open checks the endpoint, the bucket and the
// credentials the same way and fails with such a message. Check answers
// ErrUnavailable while the bucket cannot be listed.
//
// # Differences from the disk store
//
//   - A file replaced during a download ends the download with ErrChanged
//     instead of continuing on the old version (buckets without versions
//     keep no old version).
//   - A resumable upload's committed size is the end of its last whole
//     part, not every byte received; Suspend drops the rest.
//   - Usage is kept per process unless Options.Usage shares it: exact
//     while one process writes, it drifts between replicas until it is
//     listed again (see Usage and quotas); a plain upload in flight counts as one more file unless a
//     quota made the store look whether it replaces one.
//   - A plain upload that runs longer than the TTL may be aborted by the
//     janitor; the per-owner cap on incomplete uploads, and the folder
//     rule, are exact only within one process.
//
// The code is laid out by concern:
//
//	doc.go                this overview
//	options.go            Options and their defaults
//	s3store.go            Store, Open, keys and owners
//	errors.go             S3 errors to service errors
//	locks.go              stream holds and per-key mutexes (the set of uploads in use is internal/keylock)
//	lease.go              a resumable upload's lease, and its loss
//	parts.go              part buffers, part uploads, clean-up requests
//	stream.go             a part streamed through a pipe as it arrives
//	upload.go             Create and the plain upload
//	precondition.go       publishing a file: preconditions, quota, copy
//	folders.go            the folder rule
//	usage.go, quota.go    usage counters; Usage, reservations, tally
//	read.go, list.go      Open, Stat, ReadAt; List, Delete
//	readahead.go          a download's next window, fetched ahead
//	state.go              a resumable upload's state object
//	resumable.go          BeginResumable, claims, QueryResumable
//	resumable_upload.go   the resumable upload: parts, Suspend, Commit
//	janitor.go            CleanExpiredUploads, CleanTemporaries
//	health.go             Check, and Open's check of conditional writes
package s3store

// Package diskstore is a service.Store that keeps files on a local
// filesystem.
//
// Guarantees:
//
//   - Every file operation on a client-supplied name goes through one
//     os.Root opened on the data directory, and names are checked with
//     objname.Validate again, so no name reaches outside the data
//     directory or into another owner's files. Symbolic links are followed
//     only while they stay inside the data directory.
//   - An upload is written to a private temporary file and becomes visible
//     only when Commit succeeds: the bytes are checked against the declared
//     size and SHA-256, synced, renamed over the final name in one step
//     (replacing any previous version; when uploads of one name race, the
//     last one to commit wins and no two are ever mixed) and the directory
//     is synced. Any failure removes the temporary file.
//   - The uploader's preconditions (create only, if the stored SHA-256
//     matches) and the owner's quota are checked under the owner's lock,
//     which every commit and delete of the owner holds across its rename or
//     removal: of two racing create-only uploads exactly one succeeds, and
//     an owner never ends up above its quota by a race.
//   - Each owner's usage (bytes and files, incomplete uploads included at
//     what they set aside) is computed from its folders at first use and
//     then kept in memory, changed together with the disk; a restart
//     computes it again. Quotas (WithQuotas) fail uploads with a
//     *service.QuotaError when they start, while they stream and at
//     Commit. Deleting, replacing and expiring give space back.
//   - A file opened for reading keeps the version it opened.
//   - Running out of space or filesystem quota is reported as
//     service.ErrNoSpace; a missing name as service.ErrNotFound; a name
//     that needs a folder where a file is, or names a folder, as
//     service.ErrConflict; a name that objname.Validate rejects as its
//     *objname.Error; a bad owner as ErrInvalidOwner. A data directory that
//     cannot be used (removed, replaced, read-only, not permitted, I/O
//     errors) is reported as service.ErrUnavailable, never as a missing
//     name or an empty list.
//   - The one exception to "an error from Commit means nothing changed":
//     when the folder sync after the rename fails, the new version is
//     already visible but may not survive a crash, and Commit reports the
//     error so that no caller promises durability it does not have.
//   - A resumable commit renames the part file to the file, then removes
//     the state; a process that dies in between loses the answer. A state
//     whose part file is gone while the file is that part file (the state
//     records its device and inode, which the rename keeps) and holds the
//     declared size and SHA-256 is therefore a completed upload, answered
//     as the S3 store answers one: QueryResumable reports the whole size,
//     a resume at the end commits to the file's info and forgets the
//     upload, and a resume elsewhere gets ErrOffsetMismatch at the end. An
//     upload begun without a SHA-256 cannot be recognised so, and starts
//     over.
//
// Layout of the data directory:
//
//	layout                  the layout version, "2".
//	objects/<owner>/<name>  committed files, mode 0640; folders 0750.
//	                        <owner> is the owner in lower-case unpadded
//	                        base32, so that owners differing only in case
//	                        never share a folder.
//	tmp/<random hex>.tmp    uploads in progress, mode 0600.
//	.lock                   the lock file, mode 0600: a Store holds
//	                        flock(2) on it from Open to Close; it records
//	                        the holder's pid and host. Never removed.
//
// Each committed file carries its SHA-256 in the extended attribute
// user.greeter.sha256 when the filesystem supports it. Open and Stat compute
// and try to store the digest when the attribute is missing; List reports a
// zero SHA256 for such a file instead of reading it.
//
// One Store at a time owns a data directory: Open fails with ErrLocked,
// naming the holder, while another Store (in any process on this host)
// holds it, so a second server can neither remove the first one's
// temporary files nor write the same resumable upload.
//
// Open migrates a data directory of layout 1 (no layout file, owners in
// base64url) once, renaming each owner folder after the owner's new key
// (WithOwnerMigration); see migrate.go.
//
// Temporary files of uploads that died with the process stay in tmp/ until
// CleanTemporaries removes them, once they are MinTemporaryAge old; Open
// never does.
//
// Resumable uploads (service.ResumableStore) keep their bytes across broken
// streams and restarts:
//
//	uploads/<owner>/<id>.part  the bytes received so far, mode 0600.
//	uploads/<owner>/<id>.json  the upload's state: name, declared size and
//	                           SHA-256, committed size, the SHA-256 state
//	                           after the committed bytes, times.
//
// The committed size in the state never claims a byte that is not durable:
// the part file is synced before the state that counts its bytes is
// written, and the state is replaced atomically (temporary file, sync,
// rename, folder sync). Progress is saved every checkpoint interval while
// bytes arrive and whenever an upload is suspended. Resuming truncates the
// part file to the committed size and restores the hash state, so no byte
// is hashed twice and bytes written after the last save are received
// again. A completed upload is committed exactly like a plain one (the
// same verification, sync and rename into objects/) and its state is
// deleted; a size or digest mismatch deletes it too. One stream at a time
// may hold an upload (an in-process lock; the directory lock makes one
// process the owner of a data directory). Incomplete uploads are never visible to Open, Stat, List or
// Delete; CleanExpiredUploads removes those not written to for a while.
//
// Check reports whether the data directory still takes uploads; Live is a
// store that follows its data directory when it is removed and comes back.
//
// The code is laid out by concern:
//
//	doc.go               this overview
//	diskstore.go         Store, Open, the layout, owners' paths, error wrapping
//	dirlock.go           the data directory's lock, ErrLocked
//	owner.go             owner folder names
//	migrate.go           the layout file and the one-time migration to it
//	options.go           every Option with its field and its default
//	hashedfile.go        the file an upload writes and hashes in one pass
//	commit.go            the commit tail every upload shares
//	precondition.go      create-only and if-match, checked at commit
//	usage.go             per-owner usage, holds and quotas; Usage, ScanUsage
//	upload.go            Create and the plain upload
//	resumable.go         BeginResumable, QueryResumable, files under uploads/
//	resumable_upload.go  the resumable upload: checkpoints, Suspend, Commit
//	statefile.go         a resumable upload's state file: format, load, save
//	janitor.go           CleanTemporaries and CleanExpiredUploads
//	read.go, list.go     Open and Stat; List
//	delete.go            Delete
//	health.go            Check
//	unavailable.go       when a failure is the storage's: service.ErrUnavailable
//	live.go              Live, a store that reopens its data directory
//	sys_*.go             writeback and the digest attribute, per platform
//	flock_*.go           flock(2), per platform
package diskstore

// Package service implements the Greeter gRPC service over a Store.
//
// The service keeps the wire contract of the tutorial it grew from and adds
// what a production file service needs: every file belongs to the caller's
// namespace (the owner comes from the request context, see Server.owner),
// names are validated before any storage call, uploads stream to storage with
// bounded memory and become visible only after they are complete and
// verified, a resumable upload keeps the bytes it received when its stream
// breaks so that a later stream continues from there, downloads announce the
// size and SHA-256 of the whole file before the first chunk, and every
// failure reaches the client as a status with a precise code (see
// toStatus). Handlers never return a plain Go error.
//
// An owner stores within its quota (Store.Usage, GetUsage): an upload that
// would exceed it fails with ResourceExhausted and an errdetails.QuotaFailure,
// and an upload may require that no file of its name exists (create_only) or
// that the stored one has a given SHA-256 (if_match), else it fails with
// FailedPrecondition; the store checks both atomically with publishing.
//
// Handlers live by concern: upload.go (plain and resumable uploads, one
// receive loop), download.go, files.go (the unary file RPCs), quota.go
// (preconditions and the early quota check), and service.go (the Server,
// its Options and SayHello).
package service

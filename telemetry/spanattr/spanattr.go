// Package spanattr is the vocabulary of the span attributes the greeter
// service sets on the server span of an RPC: the keys, and the bound on the
// one value a client chooses freely, the object name.
//
// It guarantees that every key is spelled here once, that ObjectName never
// returns more than MaxObjectLen bytes nor splits a UTF-8 sequence, and that
// importing it pulls in only the OpenTelemetry attribute API, not the SDK.
// Values set under these keys must never include bearer tokens, metadata
// dumps or file contents.
package spanattr

import (
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
)

// Span attribute keys the service sets on the server span of an RPC.
const (
	// Owner is the namespace owner of the object (the caller's subject).
	Owner = attribute.Key("greeter.owner")
	// Object is the object name, set through ObjectName so it is bounded.
	Object = attribute.Key("greeter.object")
	// UploadID is the client-chosen upload_id of a resumable upload.
	UploadID = attribute.Key("greeter.upload_id")
	// Offset is where the chunks of a resumed upload start in the file.
	Offset = attribute.Key("greeter.offset")
	// Bytes is the number of bytes of the stored file.
	Bytes = attribute.Key("greeter.bytes")
	// Chunks is the number of data messages the RPC received.
	Chunks = attribute.Key("greeter.chunks")
	// SHA256 is the hex SHA-256 digest of the whole object.
	SHA256 = attribute.Key("greeter.sha256")
	// Outcome is how a transfer ended: "ok", or the snake_case name of the
	// status code ("invalid_argument", "not_found", ...).
	Outcome = attribute.Key("greeter.outcome")
)

// MaxObjectLen is the most bytes of an object name ObjectName keeps.
const MaxObjectLen = 128

// ObjectName returns the Object attribute for name, truncated to at most
// MaxObjectLen bytes without splitting a UTF-8 sequence.
func ObjectName(name string) attribute.KeyValue {
	return Object.String(truncate(name, MaxObjectLen))
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

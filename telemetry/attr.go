package telemetry

import (
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
)

// Span attribute keys the service sets on the server span of an RPC. Values
// must never include bearer tokens, metadata dumps or file contents.
const (
	// AttrOwner is the namespace owner of the object: the caller's typed
	// identity key (identity.Identity.Key), such as jwt:<iss>:<sub>.
	AttrOwner = attribute.Key("greeter.owner")
	// AttrObject is the object name, set through ObjectAttr so it is
	// bounded.
	AttrObject = attribute.Key("greeter.object")
	// AttrBytes is the number of file bytes moved by the RPC.
	AttrBytes = attribute.Key("greeter.bytes")
	// AttrChunks is the number of data messages the RPC sent or received.
	AttrChunks = attribute.Key("greeter.chunks")
	// AttrSHA256 is the hex SHA-256 digest of the whole object.
	AttrSHA256 = attribute.Key("greeter.sha256")
	// AttrOutcome is a short fixed word for how the operation ended, for
	// example "stored", "exists", "not_found", "aborted".
	AttrOutcome = attribute.Key("greeter.outcome")
)

// MaxObjectAttrLen is the most bytes of an object name ObjectAttr keeps.
const MaxObjectAttrLen = 128

// ObjectAttr returns the AttrObject attribute for name, truncated to at most
// MaxObjectAttrLen bytes without splitting a UTF-8 sequence.
func ObjectAttr(name string) attribute.KeyValue {
	return AttrObject.String(truncateUTF8(name, MaxObjectAttrLen))
}

func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

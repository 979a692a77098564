package service_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	pb "github.com/greeter/greeter/proto/greeterpb"
)

// Limits of FuzzUploadSequence: at most fuzzMaxOps operations per input,
// files of at most fuzzMaxFile bytes (so that oversize uploads are reachable
// in a few chunks), chunks of at most fuzzBigChunk bytes.
const (
	fuzzMaxOps   = 32
	fuzzMaxFile  = 64 << 10
	fuzzBigChunk = 48 << 10
)

// Operation kinds, chosen by the first byte of an operation modulo 8:
// metadata 2/8, chunk 4/8, cancel 1/8, end of stream 1/8.
const (
	fuzzOpMeta   = 0
	fuzzOpChunk  = 2
	fuzzOpCancel = 6
	fuzzOpEOF    = 7
)

// fuzzNames are the names a MetaData operation picks from. ok says whether
// objname accepts the joined name; several valid names conflict with each
// other (a file where another needs a folder).
var fuzzNames = []struct {
	filename, extension string
	ok                  bool
}{
	{"a.txt", "", true},
	{"b.bin", "", true},
	{"dir/c.txt", "", true},
	{"dir", "", true},
	{"a.txt/x", "", true},
	{"d/e/f/g.bin", "", true},
	{"report", ".pdf", true},
	{"dir/", "c.txt", true},
	{"", "", false},
	{"../escape", "", false},
	{"/abs", "", false},
	{"a//b", "", false},
	{"dot/./x", "", false},
	{"nul\x00", "", false},
	{"bidi\u202etxt.exe", "", false},
	{"e\u0301", "", false}, // not NFC
	{strings.Repeat("s", 256), "", false},
	{`back\slash`, "", false},
	{"a.txt", "/..", false},
}

// Declared-size and declared-digest modes of a MetaData operation. "Exact"
// and "right" refer to the bytes the upload's chunks actually carry.
const (
	sizeNone = iota
	sizeExact
	sizeLess
	sizeMore
	sizeNegative
	sizeOverMax
)

const (
	digestNone = iota
	digestRight
	digestWrong
	digestNotHex
	digestShort
)

// fuzzOp is one decoded operation.
type fuzzOp struct {
	kind   int
	name   int // index into fuzzNames
	size   int // size mode
	digest int // digest mode
	n      int // chunk length
}

// decodeFuzzOps turns fuzz bytes into at most fuzzMaxOps operations. Every
// input decodes; missing argument bytes read as zero.
func decodeFuzzOps(b []byte) []fuzzOp {
	next := func() int {
		if len(b) == 0 {
			return 0
		}
		c := int(b[0])
		b = b[1:]
		return c
	}
	var ops []fuzzOp
	for len(b) > 0 && len(ops) < fuzzMaxOps {
		switch k := next() % 8; {
		case k < fuzzOpChunk:
			name, flags := next(), next()
			ops = append(ops, fuzzOp{kind: fuzzOpMeta, name: name % len(fuzzNames), size: (flags & 7) % 6, digest: (flags >> 3 & 7) % 5})
		case k < fuzzOpCancel:
			n := next()
			length := n * 16
			if n == 255 {
				length = fuzzBigChunk
			}
			ops = append(ops, fuzzOp{kind: fuzzOpChunk, n: length})
		default:
			ops = append(ops, fuzzOp{kind: k})
		}
	}
	return ops
}

// Encoders for seeds: the inverse of decodeFuzzOps. Chunk lengths are
// multiples of 16 up to 4064.
func seedMeta(name, size, digest int) []byte {
	return []byte{fuzzOpMeta, byte(name), byte(digest<<3 | size)}
}
func seedChunk(n int) []byte         { return []byte{fuzzOpChunk, byte(n / 16)} }
func seedBigChunk() []byte           { return []byte{fuzzOpChunk, 255} }
func seedCancel() []byte             { return []byte{fuzzOpCancel} }
func seedEOF() []byte                { return []byte{fuzzOpEOF} }
func seedOps(parts ...[]byte) []byte { return slices.Concat(parts...) }

// fuzzPattern returns n deterministic bytes for the upload numbered upload,
// starting at offset off of its file.
func fuzzPattern(upload, off, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		p := off + i
		b[i] = byte(p*7 + p>>8 + upload*13)
	}
	return b
}

// fuzzMetaData builds the MetaData of op for an upload of size bytes whose
// digest is sum.
func fuzzMetaData(op fuzzOp, size int, sum [32]byte) *pb.MetaData {
	n := fuzzNames[op.name]
	md := &pb.MetaData{Filename: n.filename, Extension: n.extension}
	declare := func(v int64) { md.Size = &v }
	switch op.size {
	case sizeExact:
		declare(int64(size))
	case sizeLess:
		declare(int64(size - 1))
	case sizeMore:
		declare(int64(size + 1))
	case sizeNegative:
		declare(-1)
	case sizeOverMax:
		declare(fuzzMaxFile + 1)
	}
	switch op.digest {
	case digestRight:
		md.Sha256 = hex.EncodeToString(sum[:])
	case digestWrong:
		other := sha256.Sum256(append(sum[:], 'x'))
		md.Sha256 = hex.EncodeToString(other[:])
	case digestNotHex:
		md.Sha256 = strings.Repeat("z", 64)
	case digestShort:
		md.Sha256 = "abcd"
	}
	return md
}

// describeFuzzOps renders ops for failure messages.
func describeFuzzOps(ops []fuzzOp) string {
	var parts []string
	for _, op := range ops {
		switch op.kind {
		case fuzzOpMeta:
			n := fuzzNames[op.name]
			parts = append(parts, fmt.Sprintf("meta(%q size=%d digest=%d)", n.filename+n.extension, op.size, op.digest))
		case fuzzOpChunk:
			parts = append(parts, fmt.Sprintf("chunk(%d)", op.n))
		case fuzzOpCancel:
			parts = append(parts, "cancel")
		case fuzzOpEOF:
			parts = append(parts, "eof")
		}
	}
	return strings.Join(parts, " ")
}

// Package objname decides which object names and list prefixes the service
// accepts.
//
// An accepted name is a relative, '/'-separated path of at most MaxLen bytes
// whose segments are each at most MaxSegmentLen bytes and are never empty,
// "." or "..". It is valid UTF-8 in Unicode Normalization Form C and holds no
// backslash, no control character (C0, DEL, C1, U+2028, U+2029) and no
// format character (Unicode category Cf: bidi overrides and isolates,
// zero-width characters, the byte order mark, ...). Every segment of an
// accepted name therefore passes filepath.IsLocal, and the name can be
// created under an os.Root without leaving it.
//
// Validation never rewrites a name: a name that is not NFC is rejected, not
// normalised, so one stored object has exactly one spelling. Rejections are
// *Error values naming the rule that was broken; callers map them to
// codes.InvalidArgument. Neither an *Error nor a message built with Quote
// shows more than QuoteLen bytes of the input, so a rejected megabyte costs
// a few hundred bytes in a status message or a log line.
package objname

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

const (
	// MaxLen is the longest accepted name, in bytes.
	MaxLen = 1024
	// MaxSegmentLen is the longest accepted segment of a name, in bytes.
	MaxSegmentLen = 255
)

// Rule identifies the rule a rejected name or prefix broke.
type Rule string

// The rules Validate and ValidatePrefix enforce.
const (
	RuleEmpty       Rule = "empty"        // the name is empty
	RuleTooLong     Rule = "too_long"     // longer than MaxLen bytes
	RuleSegmentLong Rule = "segment_long" // a segment longer than MaxSegmentLen bytes
	RuleUTF8        Rule = "utf8"         // not valid UTF-8
	RuleNFC         Rule = "nfc"          // not in Normalization Form C
	RuleAbsolute    Rule = "absolute"     // starts with '/'
	RuleSegment     Rule = "segment"      // an empty, "." or ".." segment
	RuleBackslash   Rule = "backslash"    // contains '\'
	RuleControl     Rule = "control"      // contains a control character
	RuleFormat      Rule = "format"       // contains a format (Cf) character
)

// Error reports why a name or prefix was rejected. It never contains more
// of the rejected input than Quote shows, so it is safe to return to a
// client or to log.
type Error struct {
	// Rule is the rule that was broken.
	Rule Rule
	// Reason is a human-readable sentence describing the violation, such as
	// `name segment ".." is not allowed`.
	Reason string
}

// Error returns e.Reason.
func (e *Error) Error() string { return e.Reason }

func reject(rule Rule, format string, args ...any) *Error {
	return &Error{Rule: rule, Reason: fmt.Sprintf(format, args...)}
}

// Join forms an object name from an upload's filename and extension exactly
// as the tutorial's client sends them: the extension keeps its leading dot
// and may be empty, so Join("report", ".pdf") is "report.pdf". Join does not
// validate; pass its result to Validate.
func Join(filename, extension string) string {
	return filename + extension
}

// Validate returns nil if name is an acceptable object name and an *Error
// naming the broken rule otherwise.
func Validate(name string) error {
	if name == "" {
		return reject(RuleEmpty, "name must not be empty")
	}
	if err := checkCommon("name", name); err != nil {
		return err
	}
	for seg := range strings.SplitSeq(name, "/") {
		if err := checkSegment("name", seg); err != nil {
			return err
		}
	}
	return nil
}

// ValidatePrefix returns nil if prefix may be used to filter a listing and an
// *Error naming the broken rule otherwise. The empty prefix is accepted. A
// prefix obeys the same character, length and normalization rules as a name,
// and every complete segment (one followed by '/') must be acceptable, but
// the prefix may end with '/' or with a partial segment such as "." or "..",
// which then matches names like ".profile" or "..notes".
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if err := checkCommon("prefix", prefix); err != nil {
		return err
	}
	segs := strings.Split(prefix, "/")
	last := len(segs) - 1
	for i, seg := range segs {
		if i == last {
			if len(seg) > MaxSegmentLen {
				return segmentTooLong("prefix", seg)
			}
			break
		}
		if err := checkSegment("prefix", seg); err != nil {
			return err
		}
	}
	return nil
}

// checkCommon applies the rules that concern the whole string: length,
// encoding, forbidden characters, normalization and a leading '/'.
func checkCommon(what, s string) error {
	if len(s) > MaxLen {
		return reject(RuleTooLong, "%s is %d bytes long, the limit is %d", what, len(s), MaxLen)
	}
	if !utf8.ValidString(s) {
		return reject(RuleUTF8, "%s must be valid UTF-8", what)
	}
	for i, r := range s {
		switch {
		case r == '\\':
			return reject(RuleBackslash, "%s contains a backslash at byte %d", what, i)
		case unicode.IsControl(r) || r == '\u2028' || r == '\u2029':
			return reject(RuleControl, "%s contains a control character (%U) at byte %d", what, r, i)
		case unicode.Is(unicode.Cf, r):
			return reject(RuleFormat, "%s contains an invisible formatting character (%U) at byte %d", what, r, i)
		}
	}
	if s[0] == '/' {
		return reject(RuleAbsolute, "%s must not start with '/'", what)
	}
	if !norm.NFC.IsNormalString(s) {
		return reject(RuleNFC, "%s must be in Unicode Normalization Form C", what)
	}
	return nil
}

// checkSegment applies the rules for one complete segment.
func checkSegment(what, seg string) error {
	switch seg {
	case "":
		return reject(RuleSegment, "%s has an empty segment (leading, trailing or doubled '/')", what)
	case ".", "..":
		return reject(RuleSegment, "%s segment %s is not allowed", what, Quote(seg))
	}
	if len(seg) > MaxSegmentLen {
		return segmentTooLong(what, seg)
	}
	return nil
}

func segmentTooLong(what, seg string) error {
	return reject(RuleSegmentLong, "%s segment is %d bytes long, the limit is %d", what, len(seg), MaxSegmentLen)
}

// QuoteLen is the most bytes of an input that Quote shows.
const QuoteLen = 64

// Quote returns s quoted as by strconv.Quote, for status messages and logs
// that mention client input. An s longer than QuoteLen bytes is cut to at
// most its first QuoteLen bytes (at a rune boundary when s is valid UTF-8)
// and followed by "…(N bytes)", N being len(s), so that the quote is at most
// a few hundred bytes whatever the input: control bytes take four bytes
// each once escaped.
func Quote(s string) string {
	if len(s) <= QuoteLen {
		return strconv.Quote(s)
	}
	cut := QuoteLen
	for i := cut; i > QuoteLen-utf8.UTFMax; i-- {
		if utf8.RuneStart(s[i]) {
			cut = i
			break
		}
	}
	return strconv.Quote(s[:cut]) + "…(" + strconv.Itoa(len(s)) + " bytes)"
}

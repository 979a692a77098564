package diskstore

import (
	"encoding/base32"
	"encoding/base64"

	"github.com/greeter/greeter/service"
)

// MaxOwnerLen is the longest accepted owner (the caller's typed identity
// key, such as jwt:<iss>:<sub>), in bytes: its folder name, 8 characters per
// 5 bytes, is then at most 255 bytes, the longest name common filesystems
// take.
const MaxOwnerLen = 159

// ErrInvalidOwner means an owner was empty or longer than MaxOwnerLen bytes.
// It is service.ErrInvalidOwner, so the service maps it to a status.
var ErrInvalidOwner = service.ErrInvalidOwner

// ownerEncoding names owner folders: the RFC 4648 base32 alphabet in lower
// case, without padding. Unlike base64 it has one letter case, so two owners
// never get folder names that differ only in case, which a case-insensitive
// filesystem (macOS, Windows, some network shares) would treat as one
// folder.
var ownerEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// legacyOwnerEncoding named owner folders in layout 1 (see migrate.go).
var legacyOwnerEncoding = base64.RawURLEncoding

// ownerFolderName returns the name of owner's folders below objects/ and
// uploads/.
func ownerFolderName(owner string) (string, error) {
	if owner == "" || len(owner) > MaxOwnerLen {
		return "", ErrInvalidOwner
	}
	return ownerEncoding.EncodeToString([]byte(owner)), nil
}

// ownerFolder returns the root-relative folder of owner's entries below
// the top-level folder top.
func ownerFolder(top, owner string) (string, error) {
	name, err := ownerFolderName(owner)
	if err != nil {
		return "", err
	}
	return top + "/" + name, nil
}

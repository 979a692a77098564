//go:build unix

package diskstore

import (
	"io/fs"
	"strconv"
	"syscall"
)

// fileIdentity names the file fi describes, by device and inode: a rename
// keeps it. It is "" when fi does not say.
func fileIdentity(fi fs.FileInfo) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	return strconv.FormatUint(uint64(st.Dev), 10) + ":" + strconv.FormatUint(uint64(st.Ino), 10)
}

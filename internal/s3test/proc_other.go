//go:build !linux

package s3test

import "os/exec"

// setParentDeathSignal does nothing where the kernel offers no parent
// death signal; the test's cleanup stops the server.
func setParentDeathSignal(*exec.Cmd) {}

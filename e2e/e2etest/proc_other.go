//go:build !linux

package e2etest

import "os/exec"

// setParentDeathSignal does nothing where the kernel offers no parent
// death signal; the test's cleanup stops the child.
func setParentDeathSignal(*exec.Cmd) {}

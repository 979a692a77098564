package main

import "syscall"

// serverSysProcAttr puts -server-cmd in its own process group, so a Ctrl-C
// meant for the load (which then finishes its operations in flight) does
// not stop the server under it, and has the kernel send it SIGTERM should
// the load die without stopping it.
func serverSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

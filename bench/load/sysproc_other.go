//go:build !linux

package main

import "syscall"

// serverSysProcAttr leaves -server-cmd in the load's process group: outside
// Linux there is no parent-death signal to clean it up otherwise.
func serverSysProcAttr() *syscall.SysProcAttr { return nil }

package batchconn

import "net"

// Writing returns how many Writes of c, a connection from Secure, are in
// progress.
func Writing(c net.Conn) int32 { return c.(*secured).writing.Load() }

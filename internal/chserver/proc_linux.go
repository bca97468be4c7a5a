package chserver

import "syscall"

// sysProcAttr puts the server in its own process group, so a terminal's
// Ctrl-C reaches only the parent (which stops it in order), and asks the
// kernel to terminate it if the parent dies without stopping it (a crashed
// or killed test binary must not leave servers behind).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

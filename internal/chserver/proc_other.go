//go:build !linux

package chserver

import "syscall"

// sysProcAttr: only Linux can tie the server's life to ours.
func sysProcAttr() *syscall.SysProcAttr { return nil }

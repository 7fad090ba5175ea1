//go:build !linux

package sshdtest

import "syscall"

// sysProcAttr puts sshd in its own process group, so that close also ends
// the per-connection processes.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

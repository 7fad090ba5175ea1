package sshdtest

import "syscall"

// sysProcAttr puts sshd in its own process group, so that close also ends
// the per-connection processes, and stops it if the test process dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

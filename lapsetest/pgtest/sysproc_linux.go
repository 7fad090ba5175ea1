package pgtest

import "syscall"

// sysProcAttr runs a server program as cred (nil: as the current user) and
// stops it with an immediate shutdown if the test process dies.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
}

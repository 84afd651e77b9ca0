package testpostgres

import "syscall"

// Pdeathsig kills the server if the test binary dies without running its cleanups (a -timeout
// panic, a kill), so no stray postgres outlives the run. The kernel clears it when the child
// changes user, but Go sets it after the credentials.
func sysProcAttr(owner *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: owner, Pdeathsig: syscall.SIGKILL}
}

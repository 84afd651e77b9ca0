package tests3

import "syscall"

// Pdeathsig kills the server if the test binary dies without running its cleanups (a -timeout
// panic, a kill), so no stray weed outlives the run.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

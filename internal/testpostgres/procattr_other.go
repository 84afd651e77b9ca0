//go:build !linux

package testpostgres

import "syscall"

func sysProcAttr(owner *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: owner}
}

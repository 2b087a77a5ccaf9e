package registrytest

import "syscall"

// procAttr kills the registry when the test process dies, even without cleanup.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

package main

import (
	"syscall"
	"unsafe"
)

// Reads and writes on nonblocking sockets never block, so they skip the Go scheduler's syscall
// bookkeeping (entersyscall/exitsyscall), which is a measurable share of a small message's cost.

func rawRead(fd int, buf []byte) (int, error) {
	n, _, errno := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

func rawWrite(fd int, buf []byte) (int, error) {
	n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

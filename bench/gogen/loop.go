package main

import (
	"syscall"
	"time"
)

// Handler gets the readiness of one registered descriptor.
type Handler interface {
	// Ready is called with the epoll events of the descriptor (edge-triggered).
	Ready(events uint32)
}

// Loop is one edge-triggered epoll instance and the handlers of its descriptors, run on the
// calling (locked) thread only.
type Loop struct {
	epfd     int
	handlers []Handler // by descriptor number
	events   []syscall.EpollEvent
	// Now is the loop's clock, read once per wake-up: nanoseconds since the loop was made.
	Now   int64
	start time.Time
	// ReadBuffer is shared by every connection: each read is fully counted before the next.
	ReadBuffer []byte
	// AfterEvents, when set, runs after each batch of events: the place to open new sockets, whose
	// descriptor numbers may be those of sockets closed in the batch, with stale events still queued.
	AfterEvents func()
}

func newLoop() (*Loop, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	return &Loop{epfd: epfd, events: make([]syscall.EpollEvent, 512), start: time.Now(), ReadBuffer: make([]byte, 256*1024)}, nil
}

// Add watches fd for input, output and hang-up, edge-triggered, for the whole life of fd.
func (l *Loop) Add(fd int, h Handler) error {
	for fd >= len(l.handlers) {
		l.handlers = append(l.handlers, nil)
	}
	l.handlers[fd] = h
	event := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLOUT | syscall.EPOLLRDHUP | (syscall.EPOLLET & 0xffffffff), Fd: int32(fd)}
	return syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, fd, &event)
}

// Remove forgets fd; closing it takes it out of the epoll set.
func (l *Loop) Remove(fd int) {
	if fd < len(l.handlers) {
		l.handlers[fd] = nil
	}
}

// Clock reads the monotonic clock into Now and returns it.
func (l *Loop) Clock() int64 {
	l.Now = int64(time.Since(l.start))
	return l.Now
}

// RunUntil dispatches events until `done` says so or the loop clock passes `deadline` (ns on the
// loop clock; 0 for none). It returns false on a deadline.
func (l *Loop) RunUntil(deadline int64, done func() bool) (bool, error) {
	for {
		if done != nil && done() {
			return true, nil
		}
		timeout := -1
		if deadline > 0 {
			left := deadline - l.Clock()
			if left <= 0 {
				return false, nil
			}
			timeout = int((left + int64(time.Millisecond) - 1) / int64(time.Millisecond))
		}
		n, err := syscall.EpollWait(l.epfd, l.events, timeout)
		if err == syscall.EINTR {
			continue // the Go runtime's own signals (preemption)
		}
		if err != nil {
			return false, err
		}
		l.Clock()
		for i := 0; i < n; i++ {
			fd := int(l.events[i].Fd)
			if fd < len(l.handlers) && l.handlers[fd] != nil {
				l.handlers[fd].Ready(l.events[i].Events)
			}
		}
		if l.AfterEvents != nil {
			l.AfterEvents()
		}
	}
}

// Close releases the epoll descriptor.
func (l *Loop) Close() {
	syscall.Close(l.epfd)
}

// Millis converts milliseconds to loop-clock nanoseconds.
func Millis(ms int) int64 {
	return int64(ms) * int64(time.Millisecond)
}

package main

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"syscall"
)

// Hooks is what a job does when its clients open, complete messages, or close.
type Hooks interface {
	Opened(c *Client)
	Messages(c *Client, count int)
	Closed(c *Client, err error)
}

// Settings says how every client of a job connects.
type Settings struct {
	Port int
	// WebSocket: HTTP upgrade and framing; otherwise bare TCP with fixed-size messages.
	WebSocket bool
	Deflate   bool
	// Size of a message, to count messages on bare TCP.
	Size int
}

const maxResponseHead = 8192

var endOfHead = []byte("\r\n\r\n")

// Client is one load-generator connection: a nonblocking socket, the HTTP upgrade (WebSocket),
// then message counting from frame headers (or byte counts on TCP), and pending output.
type Client struct {
	Slot int
	fd   int
	loop *Loop
	// Open after the 101 (WebSocket) or the connect (TCP).
	Open bool
	// Done once the socket is closed.
	Done       bool
	Extensions string
	settings   *Settings
	hooks      Hooks
	head       []byte
	counter    FrameCounter
	partial    int
	// out is the unwritten rest of the current write (a slice of a pre-built buffer).
	out []byte
	err error
}

// Dial starts a nonblocking connect to 127.0.0.1 and registers the client with the loop.
func Dial(loop *Loop, slot int, settings *Settings, hooks Hooks) (*Client, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, explainErrno("socket", err)
	}
	c := &Client{Slot: slot, fd: fd, loop: loop, settings: settings, hooks: hooks}
	if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	if err := loop.Add(fd, c); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	err = syscall.Connect(fd, &syscall.SockaddrInet4{Port: settings.Port, Addr: [4]byte{127, 0, 0, 1}})
	if err != nil && err != syscall.EINPROGRESS {
		loop.Remove(fd)
		syscall.Close(fd)
		return nil, explainErrno("connect", err)
	}
	return c, nil
}

// CloseReceived says whether the server sent a close frame.
func (c *Client) CloseReceived() bool { return c.counter.Closed }

// Ready handles the loop's events for this socket.
func (c *Client) Ready(events uint32) {
	if c.Done {
		return
	}
	if !c.Open && c.head == nil && events&syscall.EPOLLOUT != 0 {
		c.connected()
		if c.Done {
			return
		}
	}
	if events&(syscall.EPOLLIN|syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
		// Once the peer has ended, no later edge would report the end of file: read up to it.
		c.readAll(events&(syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0)
		if c.Done {
			return
		}
	}
	if events&syscall.EPOLLOUT != 0 && len(c.out) > 0 {
		c.flush()
	}
}

func (c *Client) connected() {
	if errno, err := syscall.GetsockoptInt(c.fd, syscall.SOL_SOCKET, syscall.SO_ERROR); err != nil || errno != 0 {
		if err == nil {
			err = syscall.Errno(errno)
		}
		c.fail(explainErrno("connect", err))
		return
	}
	if c.settings.WebSocket {
		c.head = make([]byte, 0, 512)
		c.Write([]byte(upgradeRequest(c.settings.Port, c.settings.Deflate)))
		return
	}
	c.Open = true
	c.hooks.Opened(c)
}

// Write sends buf, keeping what the socket does not take for the next EPOLLOUT; buf must not
// change until it is written (callers pass pre-built buffers). It returns false while output is
// still pending.
func (c *Client) Write(buf []byte) bool {
	if c.Done {
		return false
	}
	if len(c.out) > 0 {
		// Rare (jobs wait for Drained before a big write): a copy keeps the order.
		c.out = append(c.out[:len(c.out):len(c.out)], buf...)
		return false
	}
	c.out = buf
	return c.flush()
}

// Pending says whether earlier output is still unwritten.
func (c *Client) Pending() bool { return len(c.out) > 0 }

func (c *Client) flush() bool {
	for len(c.out) > 0 {
		n, err := rawWrite(c.fd, c.out)
		if err == syscall.EAGAIN {
			return false
		}
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			c.fail(err)
			return false
		}
		c.out = c.out[n:]
	}
	c.out = nil
	if c.Open {
		if writer, ok := c.hooks.(Drainer); ok {
			writer.Drained(c)
		}
	}
	return true
}

// Drainer is a Hooks that wants to know when pending output has all been written.
type Drainer interface {
	Drained(c *Client)
}

func (c *Client) readAll(toEnd bool) {
	buf := c.loop.ReadBuffer
	for !c.Done {
		n, err := rawRead(c.fd, buf)
		if err == syscall.EAGAIN {
			return
		}
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			c.fail(err)
			return
		}
		if n == 0 {
			c.Close()
			return
		}
		c.consume(buf[:n])
		if n < len(buf) && !toEnd {
			// A short read emptied the socket; the next arrival raises a new edge.
			return
		}
	}
}

func (c *Client) consume(data []byte) {
	if !c.Open {
		data = c.readHead(data)
		if data == nil || c.Done {
			return
		}
	}
	var count int
	if c.settings.WebSocket {
		count = c.counter.Push(data)
	} else {
		total := c.partial + len(data)
		count = total / c.settings.Size
		c.partial = total - count*c.settings.Size
	}
	if count > 0 {
		c.hooks.Messages(c, count)
	}
}

// readHead collects the server's response head; it returns the bytes after it once the
// connection is open, nil while the head is incomplete.
func (c *Client) readHead(data []byte) []byte {
	c.head = append(c.head, data...)
	end := bytes.Index(c.head, endOfHead)
	if end < 0 {
		if len(c.head) > maxResponseHead {
			c.fail(errors.New("no end of the HTTP response head"))
		}
		return nil
	}
	text := string(c.head[:end])
	rest := c.head[end+len(endOfHead):]
	c.head = nil
	if !strings.HasPrefix(text, "HTTP/1.1 101") {
		c.fail(fmt.Errorf("upgrade refused: %s", strings.SplitN(text, "\r\n", 2)[0]))
		return nil
	}
	for _, line := range strings.Split(text, "\r\n")[1:] {
		colon := strings.IndexByte(line, ':')
		if colon > 0 && strings.EqualFold(line[:colon], "sec-websocket-extensions") {
			c.Extensions = strings.TrimSpace(line[colon+1:])
		}
	}
	c.Open = true
	c.hooks.Opened(c)
	if len(rest) == 0 {
		return nil
	}
	// rest aliases c.head's array, which is no longer used.
	return rest
}

// Shutdown ends the client's sending side (TCP FIN) and keeps reading.
func (c *Client) Shutdown() {
	if err := syscall.Shutdown(c.fd, syscall.SHUT_WR); err != nil {
		c.fail(err)
	}
}

func (c *Client) fail(err error) {
	if c.err == nil {
		c.err = err
	}
	c.Close()
}

// Close closes the socket (if open) and tells the hooks once.
func (c *Client) Close() {
	if c.Done {
		return
	}
	c.Done = true
	c.out = nil
	c.loop.Remove(c.fd)
	syscall.Close(c.fd)
	c.hooks.Closed(c, c.err)
}

// Destroy closes the socket without telling the hooks (the job is over).
func (c *Client) Destroy() {
	if c.Done {
		return
	}
	c.Done = true
	c.loop.Remove(c.fd)
	syscall.Close(c.fd)
}

func upgradeRequest(port int, deflate bool) string {
	extensions := ""
	if deflate {
		extensions = "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n"
	}
	return fmt.Sprintf("GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s\r\n", port, extensions)
}

// explainErrno turns descriptor and port exhaustion into advice a reader can act on.
func explainErrno(what string, err error) error {
	switch err {
	case syscall.EMFILE, syscall.ENFILE:
		return fmt.Errorf("%s: %v: the load generator ran out of file descriptors (raise ulimit -n)", what, err)
	case syscall.EADDRNOTAVAIL:
		return fmt.Errorf("%s: EADDRNOTAVAIL: no free local ports (TIME_WAIT; see net.ipv4.ip_local_port_range)", what)
	}
	return fmt.Errorf("%s: %v", what, err)
}

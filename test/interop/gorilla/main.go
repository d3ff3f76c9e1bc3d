// A gorilla/websocket peer for interoperability tests (built from Debian's
// golang-github-gorilla-websocket-dev in GOPATH mode).
//
//	gorilla-peer client <ws-url> [compress]   runs a battery of exchanges against an echo server
//	gorilla-peer server [compress]            echoes on 127.0.0.1:<random>/echo and prints the port
package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/gorilla/websocket"
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "FAIL: "+format+"\n", args...)
	os.Exit(1)
}

func pattern(size int, seed byte) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i%251) ^ seed
	}
	return b
}

func expectEcho(c *websocket.Conn, wantType int, want []byte, what string) {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	gotType, got, err := c.ReadMessage()
	if err != nil {
		fail("%s: read: %v", what, err)
	}
	if gotType != wantType || !bytes.Equal(got, want) {
		fail("%s: got type %d, %d bytes; want type %d, %d bytes", what, gotType, len(got), wantType, len(want))
	}
}

func runClient(url string, compress bool) {
	dialer := websocket.Dialer{HandshakeTimeout: 10 * time.Second, WriteBufferSize: 1024, EnableCompression: compress}
	c, resp, err := dialer.Dial(url, nil)
	if err != nil {
		fail("dial: %v", err)
	}
	if compress && resp.Header.Get("Sec-Websocket-Extensions") == "" {
		fail("compression was not negotiated")
	}
	checks := 0
	for _, size := range []int{0, 1, 125, 126, 127, 65535, 65536, 1 << 20} {
		text := bytes.Repeat([]byte("é"), size/2)
		if err := c.WriteMessage(websocket.TextMessage, text); err != nil {
			fail("write text %d: %v", size, err)
		}
		expectEcho(c, websocket.TextMessage, text, fmt.Sprintf("text %d", size))
		bin := pattern(size, 7)
		if err := c.WriteMessage(websocket.BinaryMessage, bin); err != nil {
			fail("write binary %d: %v", size, err)
		}
		expectEcho(c, websocket.BinaryMessage, bin, fmt.Sprintf("binary %d", size))
		checks += 2
	}
	// A message in many fragments (the writer sends one frame per 1024-byte buffer).
	w, err := c.NextWriter(websocket.BinaryMessage)
	if err != nil {
		fail("next writer: %v", err)
	}
	fragmented := pattern(100000, 3)
	for i := 0; i < len(fragmented); i += 100 {
		w.Write(fragmented[i : i+100])
	}
	if err := w.Close(); err != nil {
		fail("writer close: %v", err)
	}
	expectEcho(c, websocket.BinaryMessage, fragmented, "fragmented")
	checks++

	// Ping: the pong handler must see the same payload before the next echo arrives.
	pong := make(chan string, 1)
	c.SetPongHandler(func(data string) error { pong <- data; return nil })
	if err := c.WriteControl(websocket.PingMessage, []byte("are you there"), time.Now().Add(time.Second)); err != nil {
		fail("ping: %v", err)
	}
	c.WriteMessage(websocket.TextMessage, []byte("after ping"))
	expectEcho(c, websocket.TextMessage, []byte("after ping"), "after ping")
	select {
	case data := <-pong:
		if data != "are you there" {
			fail("pong payload %q", data)
		}
	default:
		fail("no pong before the echo that followed the ping")
	}
	checks++

	// Closing handshake started by the client.
	c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err = c.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		fail("expected close 1000, got %v", err)
	}
	checks++
	c.Close()
	fmt.Printf("OK %d\n", checks)
}

func runServer(compress bool) {
	upgrader := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }, EnableCompression: compress}
	http.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			mt, data, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(mt, data); err != nil {
				return
			}
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail("listen: %v", err)
	}
	fmt.Printf("PORT %d\n", ln.Addr().(*net.TCPAddr).Port)
	http.Serve(ln, nil)
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: gorilla-peer client <url> [compress] | server [compress]")
	}
	compress := os.Args[len(os.Args)-1] == "compress"
	switch os.Args[1] {
	case "client":
		runClient(os.Args[2], compress)
	case "server":
		runServer(compress)
	default:
		fail("unknown mode %s", os.Args[1])
	}
}

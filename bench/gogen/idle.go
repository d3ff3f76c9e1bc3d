package main

import (
	"fmt"
	"strings"
)

const (
	idleJSONSize    = 1024
	echoTimeoutMs   = 30_000
	repeatTimeoutMs = 30_000
)

// idleJob holds N connections open while the runner reads the server's RSS. With deflate, every
// connection first does one compressed 1 KiB echo, so that the zlib state a server allocates
// lazily exists when the RSS is read.
type idleJob struct {
	echoed int
}

func (i *idleJob) Opened(*Client)            {}
func (i *idleJob) Messages(_ *Client, n int) { i.echoed += n }
func (i *idleJob) Closed(*Client, error)     {}

func runIdle(job *Job, channel *Channel) (Result, error) {
	loop, err := newLoop()
	if err != nil {
		return Result{}, err
	}
	defer loop.Close()
	idle := &idleJob{}
	settings := &Settings{Port: job.Port, WebSocket: job.Transport == "ws", Deflate: job.Deflate, Size: idleJSONSize}
	clients, err := openClients(loop, job.Connections, settings, idle)
	if err != nil {
		return Result{}, err
	}
	defer destroyAll(clients)
	result := emptyResult()
	result.Extensions = clients[0].Extensions
	if job.Deflate {
		if !strings.Contains(strings.ToLower(result.Extensions), "permessage-deflate") {
			result.Na = "permessage-deflate not negotiated"
			return result, nil
		}
		payload, err := jsonPayload(idleJSONSize)
		if err != nil {
			return Result{}, err
		}
		frame := maskedFrame(opText, deflateMessage(payload), true)
		for _, c := range clients {
			c.Write(frame)
		}
		done, err := loop.RunUntil(loop.Clock()+Millis(echoTimeoutMs), func() bool { return idle.echoed >= len(clients) })
		if err != nil {
			return Result{}, err
		}
		if !done {
			return Result{}, fmt.Errorf("the compressed echoes did not all come back within %d s", echoTimeoutMs/1000)
		}
	}
	// Nothing is read while held: the connections are idle and the server sends nothing.
	channel.Hold(len(clients))
	result.Opened = len(clients)
	return result, nil
}

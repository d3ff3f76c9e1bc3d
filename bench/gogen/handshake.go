package main

import (
	"errors"
	"fmt"
)

const maxFailures = 100

// handshakeJob runs `concurrency` independent loops of: connect, upgrade, one echo, closing
// handshake (the client sends close 1000 and waits for the server to end TCP; on bare TCP the
// client ends its side and waits), then again. Latency is one whole cycle, connect to close.
type handshakeJob struct {
	loop      *Loop
	settings  *Settings
	message   []byte
	close     []byte
	startedAt []int64
	live      []*Client
	restart   []int
	histogram Histogram
	running   bool
	recording bool
	cycles    int64
	failures  int
	lastError error
}

func (h *handshakeJob) Opened(c *Client) { c.Write(h.message) }

func (h *handshakeJob) Messages(c *Client, _ int) {
	if h.settings.WebSocket {
		c.Write(h.close)
	} else {
		c.Shutdown()
	}
}

func (h *handshakeJob) Closed(c *Client, err error) {
	// A cycle counts once the server has answered the echo and closed its side.
	ok := err == nil && c.Open && (!h.settings.WebSocket || c.CloseReceived())
	if ok {
		if h.recording {
			h.cycles++
			h.histogram.RecordNs(h.loop.Clock() - h.startedAt[c.Slot])
		}
	} else if h.running {
		h.failures++
		if err != nil {
			h.lastError = err
		}
	}
	if h.running && h.failures < maxFailures {
		h.restart = append(h.restart, c.Slot)
	}
}

func (h *handshakeJob) begin(slot int) {
	h.startedAt[slot] = h.loop.Clock()
	c, err := Dial(h.loop, slot, h.settings, h)
	if err != nil {
		h.failures++
		h.lastError = err
		if h.failures < maxFailures {
			// Retried after the next events rather than at once, so that a full port range can drain.
			h.restart = append(h.restart, slot)
		}
		return
	}
	h.live[slot] = c
}

func (h *handshakeJob) restartClosed() {
	pending := h.restart
	h.restart = h.restart[len(h.restart):]
	for _, slot := range pending {
		h.begin(slot)
	}
}

func runHandshakes(job *Job, channel *Channel) (Result, error) {
	if job.Concurrency < 1 || job.Size < 1 {
		return Result{}, errors.New("handshake job needs concurrency and size of at least 1")
	}
	loop, err := newLoop()
	if err != nil {
		return Result{}, err
	}
	defer loop.Close()
	settings := &Settings{Port: job.Port, WebSocket: job.Transport == "ws", Size: job.Size}
	message := textPayload(job.Size)
	if settings.WebSocket {
		message = maskedFrame(opText, message, false)
	}
	h := &handshakeJob{
		loop: loop, settings: settings, message: message, close: closeFrame(), running: true,
		startedAt: make([]int64, job.Concurrency), live: make([]*Client, job.Concurrency),
	}
	loop.AfterEvents = h.restartClosed
	for slot := 0; slot < job.Concurrency; slot++ {
		h.begin(slot)
	}
	window, err := measure(loop, channel, job, &h.histogram, func(on bool) { h.recording = on })
	h.running = false
	for _, c := range h.live {
		if c != nil {
			c.Destroy()
		}
	}
	if err != nil {
		return Result{}, err
	}
	result := emptyResult()
	result.Messages = h.cycles
	result.Seconds = window.Seconds
	result.PayloadBytes = h.cycles * int64(job.Size)
	result.P50Us = h.histogram.Percentile(0.5)
	result.P99Us = h.histogram.Percentile(0.99)
	result.GenCPU = window.CPUShare
	if h.failures > 0 {
		last := "the connection closed before the cycle completed"
		if h.lastError != nil {
			last = h.lastError.Error()
		}
		result.Error = fmt.Sprintf("%d failed cycles; last: %s", h.failures, last)
	}
	return result, nil
}

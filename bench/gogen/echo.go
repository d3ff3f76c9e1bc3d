package main

import (
	"fmt"
	"strings"
)

// echoJob keeps `depth` messages outstanding on every connection: each time a read completes k
// echoes, k more go out in one write of a pre-built batch. Latency is from a message's write to its
// echo, matched in order through a per-connection ring of send times.
type echoJob struct {
	loop      *Loop
	batches   [][]byte
	depth     int
	sentAt    []int64 // depth entries per slot
	tail      []int   // next ring entry to fill, per slot
	head      []int   // oldest outstanding ring entry, per slot
	owed      []int   // messages to send once pending output is written, per slot
	histogram Histogram
	sending   bool
	recording bool
	messages  int64
	lost      int
}

func (e *echoJob) Opened(*Client) {}

func (e *echoJob) Messages(c *Client, count int) {
	slot := c.Slot
	base := slot * e.depth
	h := e.head[slot]
	for i := 0; i < count; i++ {
		if e.recording {
			e.histogram.RecordNs(e.loop.Now - e.sentAt[base+h])
		}
		h++
		if h == e.depth {
			h = 0
		}
	}
	e.head[slot] = h
	if e.recording {
		e.messages += int64(count)
	}
	if e.sending {
		e.owed[slot] += count
		e.send(c)
	}
}

func (e *echoJob) Drained(c *Client) {
	if e.sending && e.owed[c.Slot] > 0 {
		e.send(c)
	}
}

func (e *echoJob) Closed(c *Client, _ error) {
	if e.sending && c.Open {
		e.lost++
	}
}

// send writes the messages owed to a slot as one batch, unless earlier output is still pending.
func (e *echoJob) send(c *Client) {
	if c.Pending() || c.Done {
		return
	}
	slot := c.Slot
	k := e.owed[slot]
	if k > e.depth {
		k = e.depth
	}
	e.owed[slot] -= k
	base := slot * e.depth
	t := e.tail[slot]
	for i := 0; i < k; i++ {
		e.sentAt[base+t] = e.loop.Now
		t++
		if t == e.depth {
			t = 0
		}
	}
	e.tail[slot] = t
	c.Write(e.batches[k])
}

func runEcho(job *Job, channel *Channel) (Result, error) {
	batches, err := echoBatches(job)
	if err != nil {
		return Result{}, err
	}
	loop, err := newLoop()
	if err != nil {
		return Result{}, err
	}
	defer loop.Close()
	n := job.Connections
	e := &echoJob{
		loop: loop, batches: batches, depth: job.InFlight, sending: true,
		sentAt: make([]int64, n*job.InFlight), tail: make([]int, n), head: make([]int, n), owed: make([]int, n),
	}
	settings := &Settings{Port: job.Port, WebSocket: job.Transport == "ws", Deflate: job.Deflate, Size: job.Size}
	clients, err := openClients(loop, n, settings, e)
	if err != nil {
		return Result{}, err
	}
	defer destroyAll(clients)
	result := emptyResult()
	result.Extensions = clients[0].Extensions
	if job.Deflate && settings.WebSocket && !strings.Contains(strings.ToLower(result.Extensions), "permessage-deflate") {
		result.Na = "permessage-deflate not negotiated"
		return result, nil
	}
	loop.Clock()
	for _, c := range clients {
		e.owed[c.Slot] = e.depth
		e.send(c)
	}
	window, err := measure(loop, channel, job, &e.histogram, func(on bool) { e.recording = on })
	if err != nil {
		return Result{}, err
	}
	e.sending = false
	result.Messages = e.messages
	result.Seconds = window.Seconds
	result.PayloadBytes = e.messages * int64(job.Size)
	result.P50Us = e.histogram.Percentile(0.5)
	result.P99Us = e.histogram.Percentile(0.99)
	result.GenCPU = window.CPUShare
	if e.lost > 0 {
		result.Error = fmt.Sprintf("%d connections closed by the server during the run", e.lost)
	}
	return result, nil
}

// echoBatches: batches[k] holds k ready-to-write messages (frames for WebSocket, bare payloads for TCP).
func echoBatches(job *Job) ([][]byte, error) {
	if job.InFlight < 1 || job.Connections < 1 || job.Size < 1 {
		return nil, fmt.Errorf("echo job needs connections, size and inFlight of at least 1")
	}
	var payload []byte
	switch {
	case job.Deflate:
		p, err := jsonPayload(job.Size)
		if err != nil {
			return nil, err
		}
		payload = p
	case job.Text:
		payload = textPayload(job.Size)
	default:
		payload = binaryPayload(job.Size)
	}
	message := payload
	if job.Transport == "ws" {
		switch {
		case job.Deflate:
			message = maskedFrame(opText, deflateMessage(payload), true)
		case job.Text:
			message = maskedFrame(opText, payload, false)
		default:
			message = maskedFrame(opBinary, payload, false)
		}
	}
	batches := make([][]byte, job.InFlight+1)
	for k := range batches {
		batches[k] = repeat(message, k)
	}
	return batches, nil
}

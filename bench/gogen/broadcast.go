package main

import "fmt"

// broadcastJob: after the runner has seen every connection on the server, the first client sends
// one message `repeats` times, which makes the server write the broadcast to every connection;
// each time, the job waits until every client has it. Per-client latency is from the trigger to
// that client's message.
type broadcastJob struct {
	loop      *Loop
	round     []int
	current   int
	received  int
	startedAt int64
	lost      int
	histogram Histogram
}

func (b *broadcastJob) Opened(*Client) {}

func (b *broadcastJob) Messages(c *Client, _ int) {
	if b.round[c.Slot] == b.current {
		return
	}
	b.round[c.Slot] = b.current
	b.histogram.RecordNs(b.loop.Now - b.startedAt)
	b.received++
}

func (b *broadcastJob) Closed(c *Client, _ error) {
	if c.Open && b.current > 0 {
		b.lost++
	}
}

func runBroadcast(job *Job, channel *Channel) (Result, error) {
	loop, err := newLoop()
	if err != nil {
		return Result{}, err
	}
	defer loop.Close()
	b := &broadcastJob{loop: loop, round: make([]int, job.Connections)}
	settings := &Settings{Port: job.Port, WebSocket: job.Transport == "ws", Size: job.Size}
	clients, err := openClients(loop, job.Connections, settings, b)
	if err != nil {
		return Result{}, err
	}
	defer destroyAll(clients)
	channel.Hold(len(clients))
	trigger := []byte("go")
	if settings.WebSocket {
		trigger = maskedFrame(opText, trigger, false)
	}
	result := emptyResult()
	window := &Window{channel: channel, loop: loop}
	window.Start()
	var totalNs int64
	for r := 1; r <= job.Repeats; r++ {
		b.received = 0
		b.current = r
		b.startedAt = loop.Clock()
		clients[0].Write(trigger)
		done, err := loop.RunUntil(b.startedAt+Millis(repeatTimeoutMs), func() bool { return b.received >= len(clients) || b.lost > 0 })
		if err != nil {
			return Result{}, err
		}
		if !done || b.received < len(clients) {
			result.Error = fmt.Sprintf("only %d of %d clients got broadcast %d within %d s", b.received, len(clients), r, repeatTimeoutMs/1000)
			break
		}
		elapsed := loop.Now - b.startedAt
		totalNs += elapsed
		result.TimeToAllMs = append(result.TimeToAllMs, float64(elapsed)/1e6)
	}
	window.End()
	if b.lost > 0 {
		result.Error = fmt.Sprintf("%d connections closed by the server during the broadcast", b.lost)
	}
	messages := int64(len(result.TimeToAllMs) * len(clients))
	result.Messages = messages
	result.Seconds = float64(totalNs) / 1e9
	result.PayloadBytes = messages * int64(job.Size)
	result.P50Us = b.histogram.Percentile(0.5)
	result.P99Us = b.histogram.Percentile(0.99)
	result.GenCPU = window.CPUShare
	result.Opened = len(clients)
	return result, nil
}

// The compiled load generator of npm run bench: one epoll loop on one locked OS thread drives every
// connection of a job. It speaks the protocol of bench/load/main.ts (jobs in, events and results
// out) over the IPC channel Node opens for it: newline-delimited JSON on NODE_CHANNEL_FD.
package main

import (
	"fmt"
	"os"
	"runtime"
)

// Jobs this generator runs; the runner sends any other to the Node generator.
var supported = map[string]func(*Job, *Channel) (Result, error){
	"echo":      runEcho,
	"handshake": runHandshakes,
	"idle":      runIdle,
	"broadcast": runBroadcast,
}

func main() {
	// The loop is one goroutine locked to its thread; a second P serves the IPC reader so that a
	// 'release' never waits behind the loop.
	runtime.GOMAXPROCS(2)
	runtime.LockOSThread()
	channel, err := openChannel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "gogen:", err)
		os.Exit(2)
	}
	for command := range channel.Commands {
		if command.Cmd != "job" || command.Job == nil {
			continue
		}
		channel.Emit(Event{Event: "result", Result: runJob(command.Job, channel)})
	}
}

func runJob(job *Job, channel *Channel) *Result {
	run, ok := supported[job.Type]
	if !ok {
		result := emptyResult()
		result.Error = fmt.Sprintf("the Go load generator has no %q job", job.Type)
		return &result
	}
	result, err := run(job, channel)
	if err != nil {
		result = emptyResult()
		result.Error = err.Error()
	}
	return &result
}

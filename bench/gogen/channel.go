package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"sync"
)

// Channel is the IPC channel of a child spawned by Node with 'ipc' in its stdio: Node's "json"
// serialization is one JSON document per line, both ways.
type Channel struct {
	Commands <-chan Command
	// Releases receives one value per 'release' command (held connections may go).
	Releases <-chan struct{}
	file     *os.File
	mu       sync.Mutex
}

func openChannel() (*Channel, error) {
	fd, err := strconv.Atoi(os.Getenv("NODE_CHANNEL_FD"))
	if err != nil {
		return nil, fmt.Errorf("NODE_CHANNEL_FD is not set: start this program from bench/run.ts (child_process with an 'ipc' stdio)")
	}
	file := os.NewFile(uintptr(fd), "node-ipc")
	commands := make(chan Command, 4)
	releases := make(chan struct{}, 4)
	go read(file, commands, releases)
	return &Channel{Commands: commands, Releases: releases, file: file}, nil
}

// read decodes commands until the runner goes away, which ends this process.
func read(file *os.File, commands chan<- Command, releases chan<- struct{}) {
	lines := bufio.NewReaderSize(file, 64*1024)
	for {
		line, err := lines.ReadBytes('\n')
		if err != nil {
			os.Exit(0)
		}
		var command Command
		if json.Unmarshal(line, &command) != nil {
			continue // Node's internal messages (NODE_*) and anything else not ours
		}
		if command.Cmd == "release" {
			releases <- struct{}{}
		} else if command.Cmd == "job" {
			commands <- command
		}
	}
}

// Emit sends one event to the runner.
func (c *Channel) Emit(event Event) {
	line, err := json.Marshal(event)
	if err != nil {
		panic(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.file.Write(append(line, '\n')); err != nil {
		os.Exit(0)
	}
}

// Hold tells the runner the connections are open and waits until it releases them.
func (c *Channel) Hold(opened int) {
	c.Emit(Event{Event: "holding", Opened: &opened})
	<-c.Releases
}

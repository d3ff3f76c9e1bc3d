package main

import (
	"errors"
	"fmt"
)

const (
	concurrentConnects = 200
	openTimeoutMs      = 60_000
)

// opener wraps a job's hooks while its clients open: it keeps at most 200 connecting at a time
// and fails the whole opening on the first client that closes before all are open.
type opener struct {
	hooks   Hooks
	clients []*Client
	wanted  int
	opened  int
	err     error
	start   func()
}

func (o *opener) Opened(c *Client) {
	o.hooks.Opened(c)
	o.opened++
	if o.opened < o.wanted && len(o.clients) < o.wanted {
		o.start()
	}
}

func (o *opener) Messages(c *Client, count int) { o.hooks.Messages(c, count) }

func (o *opener) Closed(c *Client, err error) {
	if (!c.Open || o.opened < o.wanted) && o.err == nil {
		o.err = explainOpen(err, o.opened, o.wanted)
	}
	o.hooks.Closed(c, err)
}

func (o *opener) Drained(c *Client) {
	if d, ok := o.hooks.(Drainer); ok {
		d.Drained(c)
	}
}

// openClients opens `count` clients and runs the loop until all are upgraded. The clients keep
// the returned hooks; the job's hooks get every event.
func openClients(loop *Loop, count int, settings *Settings, hooks Hooks) ([]*Client, error) {
	o := &opener{hooks: hooks, wanted: count}
	o.start = func() {
		if o.err != nil {
			return
		}
		c, err := Dial(loop, len(o.clients), settings, o)
		if err != nil {
			o.err = fmt.Errorf("connection %d of %d: %w", len(o.clients)+1, count, err)
			return
		}
		o.clients = append(o.clients, c)
	}
	for i := 0; i < count && i < concurrentConnects; i++ {
		o.start()
	}
	done, err := loop.RunUntil(loop.Clock()+Millis(openTimeoutMs), func() bool { return o.err != nil || o.opened == count })
	if err == nil && o.err != nil {
		err = o.err
	}
	if err == nil && !done {
		err = fmt.Errorf("only %d of %d connections opened within %d s", o.opened, count, openTimeoutMs/1000)
	}
	if err != nil {
		destroyAll(o.clients)
		return nil, err
	}
	return o.clients, nil
}

func destroyAll(clients []*Client) {
	for _, c := range clients {
		c.Destroy()
	}
}

func explainOpen(err error, opened, wanted int) error {
	if err == nil {
		err = errors.New("closed by the server (out of file descriptors there?)")
	}
	return fmt.Errorf("connection %d of %d failed: %w", opened+1, wanted, err)
}

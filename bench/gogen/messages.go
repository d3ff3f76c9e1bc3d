package main

// The job and result shapes of bench/shared/messages.ts, as JSON on the runner's IPC channel.

// Job is any job the runner sends; Type says which fields matter.
type Job struct {
	Type        string `json:"type"`
	Port        int    `json:"port"`
	Transport   string `json:"transport"`
	Connections int    `json:"connections"`
	Size        int    `json:"size"`
	Text        bool   `json:"text"`
	InFlight    int    `json:"inFlight"`
	Deflate     bool   `json:"deflate"`
	WarmupMs    int    `json:"warmupMs"`
	DurationMs  int    `json:"durationMs"`
	Repeats     int    `json:"repeats"`
	Concurrency int    `json:"concurrency"`
}

// Command is what the runner sends: a job, or the release of held connections.
type Command struct {
	Cmd string `json:"cmd"`
	Job *Job   `json:"job,omitempty"`
}

// Result is what the generator measured for one job; Na or Error replace the numbers.
type Result struct {
	Messages     int64     `json:"messages"`
	Seconds      float64   `json:"seconds"`
	PayloadBytes int64     `json:"payloadBytes"`
	P50Us        float64   `json:"p50Us"`
	P99Us        float64   `json:"p99Us"`
	GenCPU       float64   `json:"genCpu"`
	Extensions   string    `json:"extensions"`
	TimeToAllMs  []float64 `json:"timeToAllMs"`
	Opened       int       `json:"opened"`
	Na           string    `json:"na,omitempty"`
	Error        string    `json:"error,omitempty"`
}

// Event is what the generator tells the runner during and after a job.
type Event struct {
	Event  string  `json:"event"`
	Opened *int    `json:"opened,omitempty"`
	Result *Result `json:"result,omitempty"`
}

func emptyResult() Result {
	return Result{TimeToAllMs: []float64{}}
}

package main

import "syscall"

// Window is the measured part of a job: it tells the runner when it starts and ends (so the runner
// can sample the server's CPU) and times this process's own CPU over it.
type Window struct {
	channel  *Channel
	loop     *Loop
	cpuStart int64
	wall     int64
	// Seconds of wall time and the CPU share (1 = one core busy) once ended.
	Seconds  float64
	CPUShare float64
}

func cpuMicros() int64 {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		return 0
	}
	return usage.Utime.Sec*1e6 + usage.Utime.Usec + usage.Stime.Sec*1e6 + usage.Stime.Usec
}

// Start emits window-start and notes the CPU and wall clock.
func (w *Window) Start() {
	w.channel.Emit(Event{Event: "window-start"})
	w.cpuStart = cpuMicros()
	w.wall = w.loop.Clock()
}

// End notes the CPU and wall clock and emits window-end.
func (w *Window) End() {
	cpu := cpuMicros() - w.cpuStart
	wallNs := w.loop.Clock() - w.wall
	w.Seconds = float64(wallNs) / 1e9
	if wallNs > 0 {
		w.CPUShare = float64(cpu) * 1000 / float64(wallNs)
	}
	w.channel.Emit(Event{Event: "window-end"})
}

// measure runs the loop unmeasured for the warm-up, then over the measured window, with
// setRecording(true) and a fresh histogram exactly for the window.
func measure(loop *Loop, channel *Channel, job *Job, histogram *Histogram, setRecording func(bool)) (*Window, error) {
	if _, err := loop.RunUntil(loop.Clock()+Millis(job.WarmupMs), nil); err != nil {
		return nil, err
	}
	window := &Window{channel: channel, loop: loop}
	setRecording(true)
	histogram.Reset()
	window.Start()
	if _, err := loop.RunUntil(loop.Clock()+Millis(job.DurationMs), nil); err != nil {
		return nil, err
	}
	window.End()
	setRecording(false)
	return window, nil
}

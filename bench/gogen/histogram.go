package main

import "math"

// The bucket scheme of bench/load/histogram.ts: whole microseconds, exact below 1024 µs, then 128
// buckets per power of two (under 1 % error), up to about 35 minutes; no allocation when recording.
const (
	exact       = 1024
	subBits     = 7
	sub         = 1 << subBits
	maxExponent = 31
	buckets     = exact + (maxExponent-10)*sub
)

// Histogram of latencies in microseconds.
type Histogram struct {
	counts [buckets]uint64
	Count  uint64
}

// RecordNs records a latency given in nanoseconds.
func (h *Histogram) RecordNs(ns int64) {
	v := ns / 1000
	if v < 0 {
		v = 0
	} else if v > 0x7fffffff {
		v = 0x7fffffff
	}
	h.counts[bucketOf(uint32(v))]++
	h.Count++
}

// Reset forgets every value.
func (h *Histogram) Reset() {
	h.counts = [buckets]uint64{}
	h.Count = 0
}

// Percentile is the value (µs, bucket midpoint) below which `fraction` of the values lie; 0 when empty.
func (h *Histogram) Percentile(fraction float64) float64 {
	if h.Count == 0 {
		return 0
	}
	rank := uint64(math.Ceil(fraction * float64(h.Count)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i := 0; i < buckets; i++ {
		seen += h.counts[i]
		if seen >= rank {
			return valueOf(i)
		}
	}
	return valueOf(buckets - 1)
}

func bucketOf(v uint32) int {
	if v < exact {
		return int(v)
	}
	exponent := 31
	for v>>uint(exponent) == 0 {
		exponent--
	}
	return exact + (exponent-10)*sub + int((v>>uint(exponent-subBits))&(sub-1))
}

func valueOf(bucket int) float64 {
	if bucket < exact {
		return float64(bucket)
	}
	exponent := 10 + (bucket-exact)/sub
	step := 1 << uint(exponent-subBits)
	return float64((sub+(bucket-exact)%sub)*step) + float64(step)/2
}

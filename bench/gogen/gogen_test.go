package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"testing"
)

// serverFrame is an unmasked frame as servers send them.
func serverFrame(first byte, payload []byte) []byte {
	var header []byte
	switch n := len(payload); {
	case n < 126:
		header = []byte{first, byte(n)}
	case n < 65536:
		header = []byte{first, 126, 0, 0}
		binary.BigEndian.PutUint16(header[2:], uint16(n))
	default:
		header = []byte{first, 127, 0, 0, 0, 0, 0, 0, 0, 0}
		binary.BigEndian.PutUint64(header[2:], uint64(n))
	}
	return append(header, payload...)
}

// A stream with every header length, a fragmented message, a ping and a pong between its
// fragments, a zero-length message, and a close frame with status 1001.
func stream() []byte {
	var s []byte
	s = append(s, serverFrame(0x81, []byte("hi"))...)
	s = append(s, serverFrame(0x82, make([]byte, 200))...)
	s = append(s, serverFrame(0x82, make([]byte, 70000))...)
	s = append(s, serverFrame(0x01, []byte("frag"))...)
	s = append(s, serverFrame(0x89, []byte("p"))...)
	s = append(s, serverFrame(0x8a, nil)...)
	s = append(s, serverFrame(0x80, []byte("ment"))...)
	s = append(s, serverFrame(0x81, nil)...)
	s = append(s, serverFrame(0x88, []byte{0x03, 0xe9, 'b', 'y', 'e'})...)
	return s
}

func TestFrameCounterWhereverTheStreamIsCut(t *testing.T) {
	data := stream()
	check := func(name string, pieces [][]byte) {
		var f FrameCounter
		messages := 0
		for _, p := range pieces {
			messages += f.Push(p)
		}
		if messages != 5 || !f.Closed || f.CloseCode != 1001 || f.Pongs != 1 {
			t.Fatalf("%s: messages %d closed %v code %d pongs %d", name, messages, f.Closed, f.CloseCode, f.Pongs)
		}
	}
	check("whole", [][]byte{data})
	for cut := 1; cut < len(data); cut += 7 {
		check("two pieces", [][]byte{data[:cut], data[cut:]})
	}
	single := make([][]byte, len(data))
	for i := range data {
		single[i] = data[i : i+1]
	}
	check("byte by byte", single)
}

func TestCloseWithoutStatus(t *testing.T) {
	var f FrameCounter
	f.Push(serverFrame(0x88, nil))
	if !f.Closed || f.CloseCode != 1005 {
		t.Fatalf("closed %v code %d", f.Closed, f.CloseCode)
	}
}

func TestMaskedFrameUnmasksToThePayload(t *testing.T) {
	for _, size := range []int{0, 125, 126, 65535, 65536} {
		payload := binaryPayload(size)
		frame := maskedFrame(opBinary, payload, false)
		var f FrameCounter
		// A server's view: the same header rules, plus the mask bit and key.
		if n := f.Push(frame); n != 1 {
			t.Fatalf("size %d: counted %d messages", size, n)
		}
		offset := len(frame) - size
		key := frame[offset-4 : offset]
		got := make([]byte, size)
		for i := range got {
			got[i] = frame[offset+i] ^ key[i&3]
		}
		if !bytes.Equal(got, payload) || frame[0] != 0x82 || frame[1]&0x80 == 0 {
			t.Fatalf("size %d: the frame does not unmask to its payload", size)
		}
	}
}

func TestPayloadsMatchTheNodeGenerator(t *testing.T) {
	if string(textPayload(28)) != "abcdefghijklmnopqrstuvwxyzab" {
		t.Fatalf("text payload %q", textPayload(28))
	}
	// The first bytes of bench/shared/payloads.ts binaryPayload (xorshift32 from 0x9e3779b9).
	if got := binaryPayload(4); !bytes.Equal(got, []byte{0x19, 0x3e, 0x3a, 0xb5}) {
		t.Fatalf("binary payload % x", got)
	}
	// bench/shared/payloads.ts jsonPayload(200), byte for byte.
	const json200 = `{"type":"chat.message","room":"general","user":{"id":4711,"name":"ada","roles":["member","moderator"]},"sentAt":"2026-01-01T12:00:00.000Z","text":"hello world the quick brown fox jumps over lazy dog"}`
	if p, _ := jsonPayload(200); string(p) != json200 {
		t.Fatalf("json payload %q", p)
	}
	for _, size := range []int{200, 1024} {
		p, err := jsonPayload(size)
		if err != nil || len(p) != size || !json.Valid(p) {
			t.Fatalf("json payload of %d: %d bytes, valid %v, %v", size, len(p), json.Valid(p), err)
		}
	}
	if _, err := jsonPayload(10); err == nil {
		t.Fatal("a JSON payload smaller than its keys is refused")
	}
}

func TestHistogramPercentiles(t *testing.T) {
	var h Histogram
	if h.Percentile(0.5) != 0 {
		t.Fatal("an empty histogram gives 0")
	}
	for v := int64(1); v <= 100; v++ {
		h.RecordNs(v * 1000)
	}
	if h.Percentile(0.5) != 50 || h.Percentile(0.99) != 99 {
		t.Fatalf("exact range: p50 %v p99 %v", h.Percentile(0.5), h.Percentile(0.99))
	}
	h.Reset()
	h.RecordNs(5_000_000_000) // 5 s
	if got := h.Percentile(0.5); got < 4.95e6 || got > 5.05e6 {
		t.Fatalf("5 s recorded as %v µs", got)
	}
}

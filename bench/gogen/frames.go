package main

import (
	"bytes"
	"compress/flate"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"strings"
)

// Opcodes the generator writes.
const (
	opText   = 1
	opBinary = 2
	opClose  = 8
)

// mask is one key for the whole process: masking protects browsers' proxies, not a loopback
// benchmark, and servers unmask every frame the same way whatever the key.
var mask = func() [4]byte {
	var key [4]byte
	if _, err := rand.Read(key[:]); err != nil {
		panic(err)
	}
	return key
}()

// maskedFrame is one complete client frame (FIN, masked), built once and written many times.
func maskedFrame(opcode byte, payload []byte, rsv1 bool) []byte {
	length := len(payload)
	header := 2
	if length >= 65536 {
		header += 8
	} else if length >= 126 {
		header += 2
	}
	frame := make([]byte, header+4+length)
	frame[0] = 0x80 | opcode
	if rsv1 {
		frame[0] |= 0x40
	}
	switch header {
	case 2:
		frame[1] = 0x80 | byte(length)
	case 4:
		frame[1] = 0x80 | 126
		binary.BigEndian.PutUint16(frame[2:], uint16(length))
	default:
		frame[1] = 0x80 | 127
		binary.BigEndian.PutUint64(frame[2:], uint64(length))
	}
	copy(frame[header:], mask[:])
	body := frame[header+4:]
	for i, b := range payload {
		body[i] = b ^ mask[i&3]
	}
	return frame
}

// deflateMessage compresses a message on its own (the generator offers client_no_context_takeover,
// so one pre-built frame is valid every time) and drops the 00 00 ff ff tail (RFC 7692 §7.2.1).
func deflateMessage(message []byte) []byte {
	var out bytes.Buffer
	w, err := flate.NewWriter(&out, flate.DefaultCompression)
	if err != nil {
		panic(err)
	}
	w.Write(message)
	w.Flush()
	return bytes.TrimSuffix(out.Bytes(), []byte{0, 0, 0xff, 0xff})
}

func closeFrame() []byte {
	return maskedFrame(opClose, []byte{0x03, 0xe8}, false)
}

// repeat is count copies of frame in one buffer, so a batch of messages costs one write.
func repeat(frame []byte, count int) []byte {
	return bytes.Repeat(frame, count)
}

// The payloads of bench/shared/payloads.ts, byte for byte.

func textPayload(size int) []byte {
	out := make([]byte, size)
	for i := range out {
		out[i] = byte(97 + i%26)
	}
	return out
}

func binaryPayload(size int) []byte {
	out := make([]byte, size)
	x := uint32(0x9e3779b9)
	for i := range out {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		out[i] = byte(x)
	}
	return out
}

func jsonPayload(size int) ([]byte, error) {
	const head = `{"type":"chat.message","room":"general","user":{"id":4711,"name":"ada","roles":["member","moderator"]},"sentAt":"2026-01-01T12:00:00.000Z","text":"`
	const tail = `"}`
	empty := len(head) + len(tail)
	if empty > size {
		return nil, fmt.Errorf("JSON payload cannot be smaller than %d bytes", empty)
	}
	words := []string{"hello", "world", "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog"}
	var text strings.Builder
	for i := 0; text.Len() < size-empty; i++ {
		text.WriteString(words[i%len(words)])
		text.WriteByte(' ')
	}
	return []byte(head + text.String()[:size-empty] + tail), nil
}

package main

import "encoding/binary"

// FrameCounter counts the server's messages from frame headers alone: it collects the 2-10
// header bytes of each frame (across reads when needed) and skips the payload without copying
// it. A data frame with FIN ends a message; control frames are not messages; a close frame is
// noted with its status code, and pongs are counted.
type FrameCounter struct {
	Closed    bool
	CloseCode int // 1005 when the close frame had none; 0 before one is complete
	Pongs     int
	header    [14]byte
	have      int
	need      int
	remaining uint64
	final     bool
	control   bool
	// status bytes of a close frame still to collect
	statusHave int
	inClose    bool
}

// Push consumes data and returns how many messages it completed.
func (f *FrameCounter) Push(data []byte) int {
	messages := 0
	i := 0
	for i < len(data) {
		if f.remaining > 0 {
			take := uint64(len(data) - i)
			if take > f.remaining {
				take = f.remaining
			}
			if f.inClose {
				f.collectStatus(data[i : i+int(take)])
			}
			i += int(take)
			f.remaining -= take
			if f.remaining == 0 {
				messages += f.frameDone()
			}
			continue
		}
		if f.need == 0 {
			f.need = 2
		}
		f.header[f.have] = data[i]
		f.have++
		i++
		if f.have == 2 {
			f.need = 2
			switch f.header[1] & 0x7f {
			case 126:
				f.need += 2
			case 127:
				f.need += 8
			}
			if f.header[1]&0x80 != 0 {
				f.need += 4
			}
		}
		if f.have < f.need {
			continue
		}
		messages += f.headerDone()
	}
	return messages
}

func (f *FrameCounter) headerDone() int {
	h := f.header[:]
	length := uint64(h[1] & 0x7f)
	if length == 126 {
		length = uint64(binary.BigEndian.Uint16(h[2:]))
	} else if length == 127 {
		length = binary.BigEndian.Uint64(h[2:])
	}
	opcode := h[0] & 0x0f
	f.final = h[0]&0x80 != 0
	f.control = opcode >= 8
	if opcode == 8 {
		f.Closed = true
		if length < 2 {
			f.CloseCode = 1005
		} else {
			f.inClose = true
			f.statusHave = 0
		}
	}
	if opcode == 10 {
		f.Pongs++
	}
	f.have = 0
	f.need = 2
	f.remaining = length
	if length == 0 {
		return f.frameDone()
	}
	return 0
}

func (f *FrameCounter) collectStatus(data []byte) {
	for _, b := range data {
		if f.statusHave == 2 {
			break
		}
		f.CloseCode = f.CloseCode<<8 | int(b)
		f.statusHave++
	}
	if f.statusHave == 2 {
		f.inClose = false
	}
}

func (f *FrameCounter) frameDone() int {
	if f.final && !f.control {
		return 1
	}
	return 0
}

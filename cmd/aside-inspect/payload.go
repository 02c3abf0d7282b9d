package main

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"

	"github.com/aside-go/aside/codec"
)

// Limits of what the inspector decodes. Decoding never allocates more than
// a small multiple of the bytes read from Redis plus these bounds.
const (
	// maxJSON bounds the JSON text rendered from one payload; past it the
	// rendering stops and what was written so far is shown as truncated.
	maxJSON = 1 << 20
	// maxDecompressed bounds the bytes a compressed payload may expand to
	// (codec.CompressOptions.MaxDecodedSize); its MaxRatio bounds it to
	// 1024 times the compressed size too.
	maxDecompressed = 8 << 20
	// hexLimit is how many bytes a payload that decodes as nothing is
	// shown of, in hex.
	hexLimit = 256
)

// payloadInfo is how a payload (an entry's codec bytes, or a plain value)
// reads.
type payloadInfo struct {
	// Format is "msgpack", "json", "string", "binary", "empty", or
	// "partial" for a payload not read in full (-max-bytes), not decoded.
	Format string `json:"format"`
	// Compression names the codec.Compress marker the payload carried:
	// "stored" (uncompressed), "s2" or "zstd"; empty when it carried none.
	Compression string `json:"compression,omitempty"`
	// Size is the payload's length in bytes (before decompression).
	Size int `json:"size"`
	// JSON is the payload rendered as JSON (msgpack and json formats).
	JSON json.RawMessage `json:"json,omitempty"`
	// Text is the payload as a string (string format), or the start of a
	// JSON rendering cut at maxJSON (Truncated).
	Text string `json:"text,omitempty"`
	// Hex is the first hexLimit bytes in hex (binary format).
	Hex string `json:"hex,omitempty"`
	// Truncated reports that Text or Hex shows only the start.
	Truncated bool `json:"truncated,omitempty"`
}

// errJSONTooLarge stops a rendering that outgrows maxJSON.
var errJSONTooLarge = errors.New("JSON rendering exceeds the output limit")

// msgpackJSON is decoded by the codec package's hardened MessagePack codec:
// the codec validates the payload (every declared length backed by bytes,
// bounded nesting, no trailing bytes) before the decoder sees it, and then
// DecodeMsgpack walks the value once, writing JSON as it goes, so nothing is
// sized by a length written in the payload.
type msgpackJSON struct {
	out []byte
}

var msgpackCodec = codec.MsgPack[msgpackJSON]()

// compressed reads codec.Compress payloads, with bounds of its own.
var compressed = func() codec.Codec[[]byte] {
	c, err := codec.Compress(codec.Bytes(), codec.CompressOptions{MaxDecodedSize: maxDecompressed})
	if err != nil {
		panic(err) // constant options
	}
	return c
}()

// DecodeMsgpack implements msgpack.CustomDecoder.
func (m *msgpackJSON) DecodeMsgpack(dec *msgpack.Decoder) error {
	out, err := appendMsgpackJSON(m.out[:0], dec)
	m.out = out
	return err
}

// appendMsgpackJSON appends one MessagePack value read from dec as JSON.
// The value has been validated by the codec's scanner: depth is bounded and
// every length is backed by the payload.
func appendMsgpackJSON(dst []byte, dec *msgpack.Decoder) ([]byte, error) {
	if len(dst) > maxJSON {
		return dst, errJSONTooLarge
	}
	c, err := dec.PeekCode()
	if err != nil {
		return dst, err
	}
	switch {
	case c == msgpcode.Nil:
		return append(dst, "null"...), dec.DecodeNil()
	case c == msgpcode.False || c == msgpcode.True:
		b, err := dec.DecodeBool()
		return strconv.AppendBool(dst, b), err
	case msgpcode.IsFixedNum(c) || c == msgpcode.Int8 || c == msgpcode.Int16 || c == msgpcode.Int32 || c == msgpcode.Int64:
		n, err := dec.DecodeInt64()
		return strconv.AppendInt(dst, n, 10), err
	case c == msgpcode.Uint8 || c == msgpcode.Uint16 || c == msgpcode.Uint32 || c == msgpcode.Uint64:
		n, err := dec.DecodeUint64()
		return strconv.AppendUint(dst, n, 10), err
	case c == msgpcode.Float:
		f, err := dec.DecodeFloat32()
		return appendFloat(dst, float64(f), 32), err
	case c == msgpcode.Double:
		f, err := dec.DecodeFloat64()
		return appendFloat(dst, f, 64), err
	case msgpcode.IsString(c):
		s, err := dec.DecodeString()
		return appendJSONString(dst, s), err
	case msgpcode.IsBin(c):
		b, err := dec.DecodeBytes()
		if err != nil {
			return dst, err
		}
		// As encoding/json renders a []byte.
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, b)
		return append(dst, '"'), nil
	case msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32:
		n, err := dec.DecodeArrayLen()
		if err != nil || n < 0 {
			return append(dst, "null"...), err
		}
		dst = append(dst, '[')
		for i := range n {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = appendMsgpackJSON(dst, dec); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32:
		n, err := dec.DecodeMapLen()
		if err != nil || n < 0 {
			return append(dst, "null"...), err
		}
		dst = append(dst, '{')
		for i := range n {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = appendMsgpackKey(dst, dec); err != nil {
				return dst, err
			}
			dst = append(dst, ':')
			if dst, err = appendMsgpackJSON(dst, dec); err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	case msgpcode.IsExt(c):
		return appendMsgpackExt(dst, dec)
	}
	return dst, fmt.Errorf("msgpack: unexpected code %#x", c)
}

// appendMsgpackKey appends a map key as a JSON string: a string key as it
// is, any other key as the JSON text of its value (42 becomes "42").
func appendMsgpackKey(dst []byte, dec *msgpack.Decoder) ([]byte, error) {
	c, err := dec.PeekCode()
	if err != nil {
		return dst, err
	}
	if msgpcode.IsString(c) {
		s, err := dec.DecodeString()
		return appendJSONString(dst, s), err
	}
	key, err := appendMsgpackJSON(nil, dec)
	if err != nil {
		return dst, err
	}
	return appendJSONString(dst, string(key)), nil
}

// appendMsgpackExt appends an extension: a MessagePack timestamp as an
// RFC 3339 string, anything else as {"ext": type, "hex": body}. The body is
// read in bulk, never as a value.
func appendMsgpackExt(dst []byte, dec *msgpack.Decoder) ([]byte, error) {
	id, n, err := dec.DecodeExtHeader()
	if err != nil {
		return dst, err
	}
	body := make([]byte, n) // n is backed by the payload (the codec checked)
	if err := dec.ReadFull(body); err != nil {
		return dst, err
	}
	if id == -1 {
		if t, ok := msgpackTimestamp(body); ok {
			return appendJSONString(dst, t.UTC().Format(time.RFC3339Nano)), nil
		}
	}
	dst = append(dst, `{"ext":`...)
	dst = strconv.AppendInt(dst, int64(id), 10)
	dst = append(dst, `,"hex":"`...)
	dst = hex.AppendEncode(dst, body)
	return append(dst, `"}`...), nil
}

// msgpackTimestamp decodes the body of the timestamp extension (type -1).
func msgpackTimestamp(b []byte) (time.Time, bool) {
	switch len(b) {
	case 4:
		return time.Unix(int64(binary.BigEndian.Uint32(b)), 0), true
	case 8:
		v := binary.BigEndian.Uint64(b)
		return time.Unix(int64(v&(1<<34-1)), int64(v>>34)), true
	case 12:
		return time.Unix(int64(binary.BigEndian.Uint64(b[4:])), int64(binary.BigEndian.Uint32(b))), true
	}
	return time.Time{}, false
}

// appendFloat appends f as a JSON number, or as a string for the values
// JSON has no number for.
func appendFloat(dst []byte, f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return appendJSONString(dst, strconv.FormatFloat(f, 'g', -1, bits))
	}
	return strconv.AppendFloat(dst, f, 'g', -1, bits)
}

// appendJSONString appends s as a JSON string; invalid UTF-8 becomes U+FFFD,
// as encoding/json does.
func appendJSONString(dst []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, `\u202`...)
			dst = append(dst, hexDigits[r&0xf])
		default:
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}

// readPayload renders a payload. mustDecompress is the envelope's compressed
// flag. An error means the payload claims a format (MessagePack, a
// compression marker) whose checks it fails; the returned info then still
// shows its bytes.
func readPayload(p []byte, mustDecompress bool) (*payloadInfo, error) {
	info := &payloadInfo{Size: len(p)}
	if mustDecompress {
		raw, alg, err := decompress(p)
		if err != nil {
			showBinary(info, p)
			return info, fmt.Errorf("the entry is flagged compressed, but %w", err)
		}
		info.Compression = alg
		return info, render(info, raw, false)
	}
	return info, render(info, p, true)
}

// render fills info with the first reading of data that works: JSON,
// MessagePack, a codec.Compress payload (when tryCompressed), text, then raw
// bytes. Raw bytes that look like MessagePack or a compressed payload come
// with the reason they do not read as one.
func render(info *payloadInfo, data []byte, tryCompressed bool) error {
	if len(data) == 0 {
		info.Format = "empty"
		return nil
	}
	if json.Valid(data) {
		info.Format = "json"
		setJSON(info, data)
		return nil
	}
	var msgpackErr error
	// A single printable byte is text as much as a MessagePack fixint: take
	// it for text ("a" rather than 97).
	if !(len(data) == 1 && data[0] >= 0x20 && data[0] < 0x7f) {
		var m msgpackJSON
		msgpackErr = msgpackCodec.Unmarshal(data, &m)
		switch {
		case msgpackErr == nil:
			info.Format = "msgpack"
			if len(m.out) == 0 {
				m.out = []byte("null") // a top-level nil never reaches DecodeMsgpack
			}
			setJSON(info, m.out)
			return nil
		case errors.Is(msgpackErr, errJSONTooLarge):
			info.Format = "msgpack"
			info.Text = string(m.out)
			info.Truncated = true
			return nil
		}
	}
	var compressErr error
	if tryCompressed && looksCompressed(data) {
		raw, alg, err := decompress(data)
		if err == nil {
			info.Compression = alg
			return render(info, raw, false)
		}
		compressErr = err
	}
	if utf8.Valid(data) {
		info.Format = "string"
		if len(data) > maxJSON {
			info.Text = string(data[:maxJSON])
			info.Truncated = true
		} else {
			info.Text = string(data)
		}
		return nil
	}
	showBinary(info, data)
	switch {
	case compressErr != nil:
		return fmt.Errorf("payload looks compressed (codec.Compress marker %#x), but %w", data[0], compressErr)
	case looksMsgpack(data) && msgpackErr != nil:
		return fmt.Errorf("payload looks like MessagePack, but %w", msgpackErr)
	}
	return nil
}

func setJSON(info *payloadInfo, data []byte) {
	if len(data) > maxJSON {
		info.Text = string(data[:maxJSON])
		info.Truncated = true
		return
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, data); err != nil {
		info.Text = string(data)
		return
	}
	info.JSON = buf.Bytes()
}

func showBinary(info *payloadInfo, data []byte) {
	info.Format = "binary"
	n := min(len(data), hexLimit)
	info.Hex = hex.EncodeToString(data[:n])
	info.Truncated = n < len(data)
}

// looksCompressed reports whether data starts with a codec.Compress marker
// (0 stored, 1 S2, 2 zstd).
func looksCompressed(data []byte) bool {
	return len(data) > 1 && data[0] <= byte(codec.Zstd)
}

// looksMsgpack reports whether data starts with a MessagePack code that no
// text starts with: a map, array, string, bin, extension or number header.
func looksMsgpack(data []byte) bool {
	if len(data) == 0 {
		return false
	}
	c := data[0]
	return c >= 0x80 && c <= 0xbf || c >= 0xc4 && c <= 0xdf
}

// decompress undoes codec.Compress through the codec package itself, within
// its bounds.
func decompress(data []byte) ([]byte, string, error) {
	if len(data) == 0 {
		return nil, "", errors.New("the payload is empty")
	}
	var raw []byte
	if err := compressed.Unmarshal(data, &raw); err != nil {
		return nil, "", err
	}
	switch codec.Algorithm(data[0]) {
	case codec.S2:
		return raw, "s2", nil
	case codec.Zstd:
		return raw, "zstd", nil
	}
	return raw, "stored", nil
}

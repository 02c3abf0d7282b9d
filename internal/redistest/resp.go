package redistest

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// ReplyError is an error reply of redis-server to [Server.Do], such as
// "NOPERM this user has no permissions ..." or "ERR unknown command ...".
type ReplyError string

// Error returns the reply as the server sent it.
func (e ReplyError) Error() string { return string(e) }

// Prefix is the first word of the reply, the error code: "ERR", "NOPERM",
// "LOADING", "MOVED" and so on.
func (e ReplyError) Prefix() string {
	code, _, _ := strings.Cut(string(e), " ")
	return code
}

// maxBulk bounds what the admin client accepts for one bulk string or array, so a
// corrupt stream fails fast instead of allocating without bound.
const maxBulk = 64 << 20

// dialConn opens one connection, TLS when tlsConf is not nil, and binds its
// deadline to ctx. The returned stop function must be called before the
// connection is closed; it releases the context watch.
func dialConn(ctx context.Context, addr string, tlsConf *tls.Config) (net.Conn, func() bool, error) {
	var (
		conn net.Conn
		err  error
	)
	d := &net.Dialer{}
	if tlsConf != nil {
		conn, err = (&tls.Dialer{NetDialer: d, Config: tlsConf}).DialContext(ctx, "tcp", addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	// A context cancelled without a deadline must still unblock the read: move the
	// deadline into the past, which fails the pending I/O at once.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	return conn, stop, nil
}

// roundTrip writes each command and reads one reply per command, in order. An
// error reply inside a reply is kept as a ReplyError value; the caller decides
// whether it fails the call.
func roundTrip(ctx context.Context, addr string, tlsConf *tls.Config, cmds ...[]string) ([]any, error) {
	conn, stop, err := dialConn(ctx, addr, tlsConf)
	if err != nil {
		return nil, ctxErr(ctx, err)
	}
	defer conn.Close()
	defer stop()

	var buf []byte
	for _, cmd := range cmds {
		buf = appendCommand(buf, cmd)
	}
	if _, err := conn.Write(buf); err != nil {
		return nil, ctxErr(ctx, err)
	}
	r := bufio.NewReader(conn)
	out := make([]any, 0, len(cmds))
	for range cmds {
		v, err := readValue(r, 0)
		if err != nil {
			return out, ctxErr(ctx, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// ctxErr prefers the context's error when the context is why I/O failed, so
// callers can test errors.Is(err, context.DeadlineExceeded).
func ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%w (%v)", cerr, err)
	}
	// The connection's deadline is the context's, and its timer may fire a moment
	// before the context's own: a timeout at or past the deadline is the context's.
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
			return fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
		}
	}
	return err
}

func appendCommand(buf []byte, args []string) []byte {
	buf = append(buf, '*')
	buf = strconv.AppendInt(buf, int64(len(args)), 10)
	buf = append(buf, '\r', '\n')
	for _, a := range args {
		buf = append(buf, '$')
		buf = strconv.AppendInt(buf, int64(len(a)), 10)
		buf = append(buf, '\r', '\n')
		buf = append(buf, a...)
		buf = append(buf, '\r', '\n')
	}
	return buf
}

// readValue reads one RESP2 or RESP3 reply. Scalars become strings (integers,
// doubles and booleans in their wire text), nulls nil, error replies ReplyError,
// aggregates []any (a map as key, value, key, value ...). An attribute is read
// and dropped, returning the reply it annotates.
func readValue(r *bufio.Reader, depth int) (any, error) {
	if depth > 32 {
		return nil, errors.New("redistest: reply nested too deeply")
	}
	line, err := readLine(r)
	if err != nil {
		return nil, err
	}
	if line == "" {
		return nil, errors.New("redistest: empty reply line")
	}
	kind, rest := line[0], line[1:]
	switch kind {
	case '+', ':', ',', '(', '#':
		return rest, nil
	case '_':
		return nil, nil
	case '-':
		return ReplyError(rest), nil
	case '$', '=', '!':
		n, err := strconv.Atoi(rest)
		if err != nil || n > maxBulk {
			return nil, fmt.Errorf("redistest: bad bulk length %q", rest)
		}
		if n < 0 {
			return nil, nil // RESP2 null bulk string
		}
		data := make([]byte, n+2)
		if _, err := io.ReadFull(r, data); err != nil {
			return nil, err
		}
		s := string(data[:n])
		switch {
		case kind == '!':
			return ReplyError(s), nil
		case kind == '=' && len(s) >= 4:
			return s[4:], nil // verbatim string: drop the "txt:" format prefix
		}
		return s, nil
	case '*', '~', '>', '%', '|':
		n, err := strconv.Atoi(rest)
		if err != nil || n > maxBulk {
			return nil, fmt.Errorf("redistest: bad aggregate length %q", rest)
		}
		if n < 0 {
			return nil, nil // RESP2 null array
		}
		if kind == '%' || kind == '|' {
			n *= 2
		}
		vals := make([]any, 0, min(n, 1024))
		for range n {
			v, err := readValue(r, depth+1)
			if err != nil {
				return nil, err
			}
			vals = append(vals, v)
		}
		if kind == '|' {
			return readValue(r, depth)
		}
		return vals, nil
	default:
		return nil, fmt.Errorf("redistest: unknown reply type %q", kind)
	}
}

// render turns a reply into text: scalars as themselves, nil as nothing,
// aggregates as their elements on separate lines (nested ones flattened). The
// first error reply found anywhere in it is returned as the error.
func render(v any) (string, error) {
	var sb strings.Builder
	var firstErr error
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			sb.WriteString(v)
		case ReplyError:
			if firstErr == nil {
				firstErr = v
			}
			sb.WriteString(string(v))
		case []any:
			for i, e := range v {
				if i > 0 {
					sb.WriteByte('\n')
				}
				walk(e)
			}
		}
	}
	walk(v)
	return sb.String(), firstErr
}

func readLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r"), nil
}

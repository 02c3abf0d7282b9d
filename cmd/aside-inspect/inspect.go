package main

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/redis/rueidis"

	"github.com/aside-go/aside/internal/envelope"
)

// inspector reads keys from Redis and says what they hold.
type inspector struct {
	client rueidis.Client
	now    func() time.Time
	// maxBytes is the most a get reads of one string (GETRANGE), so that a
	// huge value costs no more than that.
	maxBytes int64
	// members is how many members of a set a get lists.
	members int
}

// report is what get says about one key; it is also its JSON line.
type report struct {
	Key string `json:"key"`
	// Type is Redis' TYPE: string, set, hash, ..., or none.
	Type string `json:"type"`
	// PTTL is Redis' PTTL: -1 no expiry, -2 no such key.
	PTTL      int64  `json:"pttl_ms"`
	ExpiresAt string `json:"expires_at,omitempty"`
	// Size is a string's length in bytes (STRLEN).
	Size int64 `json:"size,omitempty"`
	// Read is how many bytes of the string were read, when less than Size.
	Read int `json:"read,omitempty"`

	// Role is "lease key" or "tag index" for keys named so.
	Role      string `json:"role,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	ValueKey  string `json:"value_key,omitempty"`
	Tag       string `json:"tag,omitempty"`

	// Entry is the envelope of an aside entry; Plain marks a string that is
	// none (plain mode, or another program's value).
	Entry   *entryInfo   `json:"entry,omitempty"`
	Plain   bool         `json:"plain,omitempty"`
	Payload *payloadInfo `json:"payload,omitempty"`

	// Count and Members are a set's SCARD and its first members.
	Count   *int64   `json:"count,omitempty"`
	Members []string `json:"members,omitempty"`

	// LeaseKey is the plain-mode lease key of a value key, when it exists.
	LeaseKey *leaseKeyInfo `json:"lease_key,omitempty"`

	// Unreadable says why the key could not be read in full.
	Unreadable string `json:"unreadable,omitempty"`
}

type entryInfo struct {
	Version int `json:"version"`
	// Kind is "value", "not-found" or "lease".
	Kind       string `json:"kind"`
	Compressed bool   `json:"compressed,omitempty"`
	Stale      bool   `json:"stale,omitempty"`
	SoftExpiry string `json:"soft_expiry,omitempty"`
	// SoftIn is the time left to the soft expiry, negative once passed.
	SoftIn     *int64 `json:"soft_in_ms,omitempty"`
	LeaseToken string `json:"lease_token,omitempty"`
	// Generation is the namespace's generation (moved by Cache.Clear) the
	// entry was written under; 0 for a format-1 entry.
	Generation uint64 `json:"generation,omitempty"`
}

type leaseKeyInfo struct {
	Key   string `json:"key"`
	PTTL  int64  `json:"pttl_ms"`
	Token string `json:"lease_token,omitempty"`
}

const (
	kindValue    = "value"
	kindNotFound = "not-found"
	kindLease    = "lease"
)

// get describes key.
func (in *inspector) get(ctx context.Context, key string) *report {
	r := &report{Key: key}
	c := in.client
	cmds := rueidis.Commands{
		c.B().Type().Key(key).Build(),
		c.B().Pttl().Key(key).Build(),
		c.B().Strlen().Key(key).Build(),
		c.B().Getrange().Key(key).Start(0).End(in.maxBytes - 1).Build(),
	}
	// A value key of plain mode keeps its load's lease in a sibling key.
	var lk string
	if ns, ok := namespaceOf(key); ok {
		lk = leaseKey(ns, key)
		cmds = append(cmds,
			c.B().Pttl().Key(lk).Build(),
			c.B().Getrange().Key(lk).Start(0).End(63).Build())
	}
	res := c.DoMulti(ctx, cmds...)

	typ, err := res[0].ToString()
	if err != nil {
		r.Type = "?"
		r.Unreadable = "TYPE: " + err.Error()
		return r
	}
	r.Type = typ
	if r.PTTL, err = res[1].AsInt64(); err != nil {
		r.Unreadable = "PTTL: " + err.Error()
		return r
	}
	if r.PTTL >= 0 {
		r.ExpiresAt = stamp(in.now().Add(time.Duration(r.PTTL) * time.Millisecond))
	}
	if lk != "" {
		if pttl, err := res[4].AsInt64(); err == nil && pttl != -2 {
			info := &leaseKeyInfo{Key: lk, PTTL: pttl}
			if raw, err := res[5].AsBytes(); err == nil {
				if env, err := envelope.Decode(raw); err == nil && env.Kind == envelope.Lease {
					info.Token = hex.EncodeToString(env.Payload)
				}
			}
			r.LeaseKey = info
		}
	}

	if vk, ns, ok := valueKeyOf(key); ok {
		r.Role, r.Namespace, r.ValueKey = "lease key", ns, vk
	} else if ns, tag, ok := tagOf(key); ok {
		r.Role, r.Namespace, r.Tag = "tag index", ns, tag
	}

	switch typ {
	case "string":
		if r.Size, err = res[2].AsInt64(); err != nil {
			r.Unreadable = "STRLEN: " + err.Error()
			return r
		}
		raw, err := res[3].AsBytes()
		if err != nil {
			r.Unreadable = "GETRANGE: " + err.Error()
			return r
		}
		in.describeString(r, raw)
	case "set":
		in.describeSet(ctx, r)
	}
	return r
}

// describeString fills r from the bytes of a string key, raw (its first
// in.maxBytes bytes; r.Size is its length).
func (in *inspector) describeString(r *report, raw []byte) {
	cut := int64(len(raw)) < r.Size
	if cut {
		r.Read = len(raw)
	}
	if !envelope.IsEntry(raw) {
		r.Plain = true
		if cut {
			r.Payload = partial(raw, int(r.Size))
			r.Unreadable = fmt.Sprintf("value of %d bytes is over the read limit (-max-bytes %d); showing its first bytes", r.Size, in.maxBytes)
			return
		}
		p, err := readPayload(raw, false)
		r.Payload = p
		if err != nil {
			r.Unreadable = err.Error()
		}
		return
	}
	env, err := envelope.Decode(raw)
	if err != nil {
		r.Unreadable = explainEnvelope(raw, err)
		return
	}
	e := &entryInfo{Version: int(raw[1]), Compressed: env.Compressed, Stale: env.Stale, Generation: env.Gen}
	r.Entry = e
	if !env.SoftExpiry.IsZero() {
		e.SoftExpiry = stamp(env.SoftExpiry)
		left := env.SoftExpiry.Sub(in.now()).Milliseconds()
		e.SoftIn = &left
	}
	switch env.Kind {
	case envelope.Lease:
		e.Kind = kindLease
		e.LeaseToken = hex.EncodeToString(env.Payload)
	case envelope.NotFound:
		e.Kind = kindNotFound
	default:
		e.Kind = kindValue
		if cut {
			r.Payload = partial(env.Payload, int(r.Size)-(len(raw)-len(env.Payload)))
			r.Unreadable = fmt.Sprintf("value of %d bytes is over the read limit (-max-bytes %d); showing its first bytes", r.Size, in.maxBytes)
			return
		}
		p, err := readPayload(env.Payload, env.Compressed)
		r.Payload = p
		if err != nil {
			r.Unreadable = err.Error()
		}
	}
}

// explainEnvelope says why bytes that start with the magic are no entry,
// more precisely than envelope.Decode's error.
func explainEnvelope(raw []byte, err error) string {
	why := ""
	switch {
	case errors.Is(err, envelope.ErrVersion):
		return err.Error()
	case len(raw) < 2:
		why = fmt.Sprintf("truncated: %d byte, the header is %d", len(raw), envelope.HeaderSize)
	case raw[1] == 0:
		why = "format version 0"
	case len(raw) < envelope.HeaderSize:
		why = fmt.Sprintf("truncated: %d bytes, the header is %d", len(raw), envelope.HeaderSize)
	default:
		flags := raw[2]
		kind := flags & 0x0F
		switch {
		case kind < byte(envelope.Value) || kind > byte(envelope.Lease):
			why = fmt.Sprintf("unknown kind %d, flags byte %#02x", kind, flags)
		case flags&^(0x0F|0x10|envelope.FlagStale) != 0:
			why = fmt.Sprintf("unknown flags %#02x", flags)
		case kind == byte(envelope.Lease):
			why = fmt.Sprintf("a lease is exactly %d bytes without flags or soft expiry; this one is %d bytes, flags byte %#02x, soft expiry field %d",
				envelope.HeaderSize+envelope.LeaseTokenSize, len(raw), flags, binary.BigEndian.Uint64(raw[3:envelope.HeaderSize]))
		default:
			why = fmt.Sprintf("soft expiry %d ms is out of range", binary.BigEndian.Uint64(raw[3:envelope.HeaderSize]))
		}
	}
	return fmt.Sprintf("%v (%s)", err, why)
}

// describeSet fills r with a set's size and first members.
func (in *inspector) describeSet(ctx context.Context, r *report) {
	c := in.client
	n, err := c.Do(ctx, c.B().Scard().Key(r.Key).Build()).AsInt64()
	if err != nil {
		r.Unreadable = "SCARD: " + err.Error()
		return
	}
	r.Count = &n
	var cursor uint64
	seen := make(map[string]bool)
	for len(r.Members) < in.members {
		e, err := c.Do(ctx, c.B().Sscan().Key(r.Key).Cursor(cursor).Count(100).Build()).AsScanEntry()
		if err != nil {
			r.Unreadable = "SSCAN: " + err.Error()
			return
		}
		for _, m := range e.Elements {
			if !seen[m] && len(r.Members) < in.members {
				seen[m] = true
				r.Members = append(r.Members, m)
			}
		}
		if cursor = e.Cursor; cursor == 0 {
			break
		}
	}
	sort.Strings(r.Members)
}

// stamp formats an instant for output: UTC, milliseconds.
func stamp(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// partial is the payload of size bytes of which only p was read: not
// decoded, its first bytes shown.
func partial(p []byte, size int) *payloadInfo {
	info := &payloadInfo{Size: size}
	showBinary(info, p)
	info.Format = "partial"
	info.Truncated = true
	return info
}

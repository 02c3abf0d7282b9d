package cache

import (
	"errors"
	"fmt"
	"time"

	"github.com/aside-go/aside/codec"
	"github.com/aside-go/aside/internal/envelope"
	"github.com/aside-go/aside/ttlpolicy"
)

var (
	errLeaseHeld = errors.New("key is leased by a loader")
	errBadReply  = errors.New("unexpected reply from redis")
)

// errForeign is the cause of the ErrCorrupt of bytes that are not an entry
// and that the codec cannot decode.
var errForeign = errors.New("not an aside entry, and the codec cannot decode it as a value")

// decode turns the bytes of a Redis key into an entry. Bytes that do not
// begin with the envelope's magic byte are a value as another program (or a
// cache in plain mode) stores it: the codec's bytes alone, decoded as such,
// without soft expiry.
func (c *Cache[K, V]) decode(key string, raw []byte) (*entry[V], error) {
	if !envelope.IsEntry(raw) {
		e := &entry[V]{key: key, size: uint32(len(raw)), src: SourceRedis}
		if err := c.codec.Unmarshal(raw, &e.v); err != nil {
			return nil, fmt.Errorf("%w: %w: %w", ErrCorrupt, errForeign, err)
		}
		return e, nil
	}
	env, err := envelope.Decode(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	e := &entry[V]{key: key, stale: env.Stale, size: uint32(len(raw)), src: SourceRedis}
	if !env.SoftExpiry.IsZero() {
		e.softAt = env.SoftExpiry.UnixNano()
	}
	switch env.Kind {
	case envelope.NotFound:
		e.notFound = true
	case envelope.Lease:
		return nil, errLeaseHeld
	default:
		if err := c.codec.Unmarshal(env.Payload, &e.v); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
	}
	return e, nil
}

// holdsValue reports whether raw, the bytes of a key of the cache, is a
// value of generation gen or newer: not a not-found marker nor a lease, nor
// cleared. Bytes that are not an entry are another program's value.
func holdsValue(raw []byte, gen uint64) bool {
	if !envelope.IsEntry(raw) {
		return true
	}
	env, err := envelope.Decode(raw)
	return err == nil && env.Kind == envelope.Value && env.Gen >= gen
}

// entryBytes is an encoded entry and the expiry to write it with.
type entryBytes struct {
	data   []byte
	ttl    time.Duration
	softAt int64 // Unix nanoseconds; 0 = no soft expiry
	err    error
}

// encodeValue encodes v with the TTLs the policy gives it, in an entry of
// generation gen (see clear.go).
func (c *Cache[K, V]) encodeValue(key string, v V, gen uint64) entryBytes {
	var payload, entry []byte // entry: payload after room for the header
	var err error
	if pm, ok := c.codec.(codec.PrefixMarshaler[V]); ok && !c.plain {
		entry, err = pm.MarshalAfter(envelope.HeaderLen(gen), v)
	} else {
		payload, err = c.codec.Marshal(v)
	}
	if err != nil {
		return entryBytes{err: fmt.Errorf("cache: encode %s: %w", key, err)}
	}
	var ttls ttlpolicy.TTLs
	if c.valueTTL != nil {
		ttls = c.valueTTL.TTLOf(c.keyPart(key), v)
	} else {
		ttls = c.ttl.TTL(c.keyPart(key))
	}
	if c.plain {
		if envelope.IsEntry(payload) {
			return entryBytes{err: fmt.Errorf("cache: encode %s: %w: in plain mode a value may not begin with byte %#x, the envelope's magic: aside would read it as its own entry", key, codec.ErrEncode, envelope.Magic)}
		}
		return c.bounded(key, entryBytes{data: payload, ttl: ttls.Hard})
	}
	var soft time.Time
	var softAt int64
	if ttls.Soft > 0 {
		soft = c.now().Add(ttls.Soft)
		// The envelope keeps milliseconds: so does the copy, so that it
		// comes due when a copy decoded from Redis would.
		softAt = time.UnixMilli(soft.UnixMilli()).UnixNano()
	}
	if entry != nil {
		envelope.PutHeader(entry, envelope.Value, false, soft, gen)
	} else {
		entry = envelope.EncodeGen(envelope.Value, false, soft, gen, payload)
	}
	return c.bounded(key, entryBytes{data: entry, ttl: ttls.Hard, softAt: softAt})
}

// bounded is eb, or its error when its data is larger than MaxValueBytes.
func (c *Cache[K, V]) bounded(key string, eb entryBytes) entryBytes {
	if c.maxValueBytes > 0 && len(eb.data) > c.maxValueBytes {
		c.stats.tooLarge.Add(1)
		return entryBytes{err: fmt.Errorf("cache: encode %s: %w: %d bytes encoded, Options.MaxValueBytes is %d", key, ErrTooLarge, len(eb.data), c.maxValueBytes)}
	}
	return eb
}

// notFoundBytes is the not-found marker of key of generation gen, or nil
// when the policy caches no absence.
func (c *Cache[K, V]) notFoundBytes(key string, gen uint64) ([]byte, time.Duration) {
	if c.plain {
		return nil, 0 // no marker: another program would read it as a value
	}
	if d := c.ttl.NegativeTTL(c.keyPart(key)); d > 0 {
		return envelope.EncodeGen(envelope.NotFound, false, time.Time{}, gen, nil), d
	}
	return nil, 0
}

// ms converts to whole milliseconds for PX, never below 1.
func ms(d time.Duration) int64 {
	if m := d.Milliseconds(); m > 0 {
		return m
	}
	return 1
}

package cache

import (
	"reflect"
	"strconv"
	"time"

	"github.com/aside-go/aside/codec"
	"github.com/aside-go/aside/ttlpolicy"
)

const (
	defaultLocalBytes   = 64 << 20
	defaultLocalTTL     = time.Hour
	defaultLeaseTTL     = 5 * time.Second
	defaultRedisTimeout = 250 * time.Millisecond
	defaultMaxSilence   = time.Second
)

// withDefaults returns a copy of valid options with every zero field set to
// its default. The caller's struct is not touched.
func (o Options[K, V]) withDefaults() Options[K, V] {
	if o.Key == nil {
		o.Key, _ = defaultKeyFunc[K]()
	}
	if o.Codec == nil {
		o.Codec = codec.MsgPack[V]()
	}
	if o.TTL == nil {
		o.TTL = ttlpolicy.Minutes(5)
	}
	if o.LocalBytes == 0 {
		o.LocalBytes = defaultLocalBytes
	}
	if o.LocalTTL == 0 {
		o.LocalTTL = defaultLocalTTL
	}
	if o.LeaseTTL == 0 {
		o.LeaseTTL = defaultLeaseTTL
	}
	if o.MaxSilence == 0 {
		o.MaxSilence = defaultMaxSilence
	}
	if o.RedisTimeout == 0 {
		o.RedisTimeout = defaultRedisTimeout
	}
	if o.RefreshConcurrency == 0 {
		o.RefreshConcurrency = 4
	}
	if o.FailSafeThrottle == 0 {
		o.FailSafeThrottle = o.LeaseTTL
	}
	if o.RefreshTimeout == 0 {
		o.RefreshTimeout = o.LeaseTTL
	}
	switch {
	case o.BreakerThreshold == 0:
		o.BreakerThreshold = 5
	case o.BreakerThreshold < 0:
		o.BreakerThreshold = 0 // off
	}
	if o.BreakerCooldown == 0 {
		o.BreakerCooldown = time.Second
	}
	if o.FallbackConcurrency == 0 {
		o.FallbackConcurrency = 16
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// defaultKeyFunc returns the key function for string and integer kinds.
func defaultKeyFunc[K comparable]() (func(K) string, error) {
	var zero K
	switch any(zero).(type) {
	case string:
		return func(k K) string { return any(k).(string) }, nil
	case int:
		return func(k K) string { return strconv.Itoa(any(k).(int)) }, nil
	case int64:
		return func(k K) string { return strconv.FormatInt(any(k).(int64), 10) }, nil
	case uint64:
		return func(k K) string { return strconv.FormatUint(any(k).(uint64), 10) }, nil
	}
	switch reflect.TypeFor[K]().Kind() {
	case reflect.String:
		return func(k K) string { return reflect.ValueOf(k).String() }, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return func(k K) string { return strconv.FormatInt(reflect.ValueOf(k).Int(), 10) }, nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return func(k K) string { return strconv.FormatUint(reflect.ValueOf(k).Uint(), 10) }, nil
	}
	return nil, invalid("Key", "required for key type %s (defaults exist for string and integer kinds)", reflect.TypeFor[K]())
}

package cache_test

import (
	"context"
	"strconv"
	"testing"
	"time"
)

func BenchmarkRTDoGet(b *testing.B) {
	rc := connect(b, shared).Rueidis()
	ctx := context.Background()
	var id int
	for b.Loop() {
		id++
		rc.Do(ctx, rc.B().Get().Key("rt:"+strconv.Itoa(id)).Build())
	}
}
func BenchmarkRTDoCacheGet(b *testing.B) {
	rc := connect(b, shared).Rueidis()
	ctx := context.Background()
	var id int
	for b.Loop() {
		id++
		rc.DoCache(ctx, rc.B().Get().Key("rtc:"+strconv.Itoa(id)).Cache(), time.Minute)
	}
}
func BenchmarkRTSet(b *testing.B) {
	rc := connect(b, shared).Rueidis()
	ctx := context.Background()
	var id int
	for b.Loop() {
		id++
		rc.Do(ctx, rc.B().Set().Key("rts:"+strconv.Itoa(id)).Value("x").PxMilliseconds(60000).Build())
	}
}

func BenchmarkRTDoCacheGetThenSet(b *testing.B) {
	rc := connect(b, shared).Rueidis()
	ctx := context.Background()
	var id int
	for b.Loop() {
		id++
		k := "rtcs:" + strconv.Itoa(id)
		rc.DoCache(ctx, rc.B().Get().Key(k).Cache(), time.Minute)
		rc.Do(ctx, rc.B().Set().Key(k).Value("x").PxMilliseconds(60000).Build())
	}
}

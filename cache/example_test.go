package cache_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aside-go/aside/cache"
	"github.com/aside-go/aside/internal/redistest"
	"github.com/aside-go/aside/loader"
	"github.com/aside-go/aside/ttlpolicy"
)

func Example() {
	srv, err := redistest.Launch(redistest.Config{}) // a private redis-server
	if err != nil {
		panic(err)
	}
	defer srv.Close()

	client, err := cache.Connect(srv.ClientOption())
	if err != nil {
		panic(err)
	}
	defer client.Close()

	type User struct {
		ID   int64
		Name string
	}
	db := map[int64]User{42: {42, "Ada"}}
	users, err := cache.New(client, cache.Options[int64, User]{
		Namespace: "user",
		TTL:       ttlpolicy.Minutes(5),
		Loader: func(ctx context.Context, id int64) (User, error) {
			u, ok := db[id]
			if !ok {
				return User{}, loader.ErrNotFound
			}
			return u, nil
		},
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()

	u, _ := users.Get(ctx, 42) // loads and writes back
	fmt.Println(u.Name)
	u, _ = users.Get(ctx, 42) // from Redis (then from memory)
	fmt.Println(u.Name)
	_, err = users.Get(ctx, 7)
	fmt.Println(errors.Is(err, cache.ErrNotFound))

	db[42] = User{42, "Ada Lovelace"}
	_ = users.Invalidate(ctx, 42)
	u, _ = users.Get(ctx, 42)
	fmt.Println(u.Name)

	ttl, _ := users.TTL(ctx, 42)
	fmt.Println(ttl > 4*time.Minute && ttl <= 6*time.Minute)
	// Output:
	// Ada
	// Ada
	// true
	// Ada Lovelace
	// true
}

package redistest_test

import (
	"context"
	"fmt"
	"log"

	"github.com/redis/rueidis"

	"github.com/aside-go/aside/internal/redistest"
)

// Outside tests, Launch starts a server and the caller closes it.
func ExampleLaunch() {
	srv, err := redistest.Launch(redistest.Config{Password: "secret"})
	if err != nil {
		log.Fatal(err) // wraps redistest.ErrNotInstalled when redis-server is missing
	}
	defer srv.Close()

	client, err := rueidis.NewClient(srv.ClientOption())
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	ctx := context.Background()
	if err := client.Do(ctx, client.B().Set().Key("greeting").Value("hello").Build()).Error(); err != nil {
		log.Fatal(err)
	}
	// Do is a one-shot admin connection, authenticated like the client.
	got, err := srv.Do(ctx, "GET", "greeting")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(got)
	// Output: hello
}

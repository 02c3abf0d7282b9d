package invalidation_test

import (
	"context"
	"fmt"

	"github.com/redis/rueidis"

	"github.com/aside-go/aside/internal/redistest"
	"github.com/aside-go/aside/invalidation"
)

func ExampleEscape() {
	fmt.Println("user:" + invalidation.Escape("1*") + ":*")
	fmt.Println("user:" + invalidation.Escape("[admin]") + ":*")
	// Output:
	// user:1\*:*
	// user:\[admin\]:*
}

func ExamplePattern() {
	srv, err := redistest.Launch(redistest.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	client, err := rueidis.NewClient(srv.ClientOption())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()
	ctx := context.Background()

	for _, k := range []string{"user:1*:name", "user:1*:email", "user:10:name", "user:1001:name"} {
		if err := client.Do(ctx, client.B().Set().Key(k).Value("v").Build()).Error(); err != nil {
			fmt.Println(err)
			return
		}
	}

	// The id comes from a user: escaped, "1*" matches only itself.
	id := "1*"
	n, err := invalidation.Pattern(ctx, client, "user:"+invalidation.Escape(id)+":*", invalidation.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("removed", n)

	left, err := client.Do(ctx, client.B().Exists().Key("user:10:name", "user:1001:name").Build()).AsInt64()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("others left", left)
	// Output:
	// removed 2
	// others left 2
}

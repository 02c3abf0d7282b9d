package loader_test

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/aside-go/aside/loader"
)

var users = map[int]string{1: "ada", 2: "grace"}

func ExampleFunc() {
	load := loader.Func[int, string](func(_ context.Context, id int) (string, error) {
		name, ok := users[id]
		if !ok {
			return "", fmt.Errorf("user %d: %w", id, loader.ErrNotFound)
		}
		return name, nil
	})
	_, err := load(context.Background(), 3)
	fmt.Println(err, errors.Is(err, loader.ErrNotFound))
	// Output:
	// user 3: loader: not found true
}

func ExampleFunc_Batch() {
	load := loader.Func[int, string](func(_ context.Context, id int) (string, error) {
		if id < 0 {
			return "", errors.New("invalid id")
		}
		name, ok := users[id]
		if !ok {
			return "", loader.ErrNotFound
		}
		return name, nil
	})
	batch := load.Batch(8) // at most 8 loads at a time
	found, err := batch(context.Background(), []int{1, 2, 3, -1})
	fmt.Println(found) // 3 is not found: absent from the map, not an error
	fmt.Println(err)
	// Output:
	// map[1:ada 2:grace]
	// key -1: invalid id
}

func ExampleKeyError() {
	load := loader.Func[string, int](func(_ context.Context, k string) (int, error) {
		return 0, errors.New("timeout")
	})
	_, err := load.Batch(0)(context.Background(), []string{"b", "a"})
	var failed []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var ke *loader.KeyError[string]
		if errors.As(e, &ke) {
			failed = append(failed, ke.Key)
		}
	}
	sort.Strings(failed)
	fmt.Println(failed)
	// Output:
	// [a b]
}

// Package loader connects a cache to its source of truth: the [Func] and
// [BatchFunc] that load values, the [ErrNotFound] they return for a missing
// record, and [Group], which makes concurrent misses of one key share one
// load.
//
// A loader for users kept in a SQL database, shared by every goroutine that
// misses the same user at the same time:
//
//	load := loader.Func[int64, User](func(ctx context.Context, id int64) (User, error) {
//		var u User
//		err := db.QueryRowContext(ctx, "SELECT name FROM users WHERE id = $1", id).Scan(&u.Name)
//		if errors.Is(err, sql.ErrNoRows) {
//			return u, fmt.Errorf("user %d: %w", id, loader.ErrNotFound)
//		}
//		return u, err
//	})
//
//	var users loader.Group[User]
//	u, _, err := users.Do(ctx, "user:42", func(ctx context.Context) (User, error) {
//		return load(ctx, 42)
//	})
//
// The package imports no Redis: the cache package puts these pieces
// behind its read path.
package loader

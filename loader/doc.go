// Package loader connects a cache to its source of truth: the [Func] and
// [BatchFunc] that load values, and the [ErrNotFound] they return for a
// missing record.
//
// A loader for users kept in a SQL database:
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
// The package imports no Redis: the cache package calls these functions
// from its read path, one load per key at a time across every process.
package loader

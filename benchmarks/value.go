package benchmarks

import "strconv"

// User is the value every contender caches: a struct of about 150 bytes in
// MessagePack (the encoding of aside, go-redis/cache and, here, rueidis and
// rueidisaside; sturdyc's distributed storage always writes JSON). Version
// is the version of the record in the [Source] it was loaded from, which is
// how the mixed workload recognises a stale read.
type User struct {
	ID        int64
	Version   int64
	Name      string
	Email     string
	Roles     []string
	Active    bool
	Score     float64
	CreatedAt int64
	Bio       string
}

// template is the record every NewUser starts from. Its strings are shared,
// so building a User allocates nothing: the loaders of the benchmarks "return
// at once" and cost every contender the same.
var template = User{
	Name:      "Ada Lovelace",
	Email:     "ada.lovelace@example.com",
	Roles:     []string{"reader", "writer"},
	Active:    true,
	Score:     98.5,
	CreatedAt: 1_700_000_000,
	Bio:       "Writes about caches.",
}

// NewUser returns the record id at version v.
func NewUser(id, v int64) User {
	u := template
	u.ID = id
	u.Version = v
	return u
}

// Key is the Redis key of record id in namespace ns, the same for every
// contender: aside builds "<namespace>:<key>" itself, the others are given it.
func Key(ns string, id int64) string {
	return ns + ":" + strconv.FormatInt(id, 10)
}

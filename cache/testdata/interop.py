"""The redis-py side of cache's TestInteropWithRedisPy.

    interop.py HOST:PORT write NS     runs the guide's operations on keys of
                                      namespace NS and prints the PTTL of each
                                      key it left, as JSON
    interop.py HOST:PORT delete PATTERN  deletes the keys matching PATTERN
                                      (SCAN MATCH, then DEL) and prints how many
    interop.py HOST:PORT read KEY...  prints the value (a string, or null) and
                                      the PTTL of each key, as JSON

Values are UTF-8 strings, as the guide stores them.
"""
import json
import sys
import time

import redis


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    r = redis.Redis(host=host, port=int(port), decode_responses=True)
    phase = sys.argv[2]
    if phase == "write":
        ns = sys.argv[3]
        k = lambda name: ns + ":" + name
        r.set(k("set"), "hello")
        r.mset({k("mset1"): "one", k("mset2"): "two"})
        r.setex(k("setex"), 60, "sixty seconds")
        r.psetex(k("psetex"), 45000, "45000 ms")
        r.set(k("expire"), "expire 30 s")
        r.expire(k("expire"), 30)
        r.set(k("pexpire"), "pexpire 25000 ms")
        r.pexpire(k("pexpire"), 25000)
        r.set(k("expireat"), "expire at")
        r.expireat(k("expireat"), int(time.time()) + 120)
        r.set(k("persist"), "persisted", ex=100)
        r.persist(k("persist"))
        r.set(ns + "-json:ada", json.dumps({"name": "Ada", "roles": ["admin", "author"], "age": 36}))
        for i in range(5):
            r.set(k("session:%d" % i), "s%d" % i, ex=300)
        # The guide's pattern delete: SCAN MATCH, then DEL.
        deleted = 0
        for key in r.scan_iter(match=k("session:*"), count=2):
            deleted += r.delete(key)
        left = [k(n) for n in ("set", "mset1", "mset2", "setex", "psetex", "expire", "pexpire", "expireat", "persist")]
        left.append(ns + "-json:ada")
        out = {"deleted": deleted, "pttl": {key: r.pttl(key) for key in left}}
    elif phase == "delete":
        out = {"deleted": sum(r.delete(key) for key in r.scan_iter(match=sys.argv[3]))}
    elif phase == "read":
        out = {key: {"value": r.get(key), "pttl": r.pttl(key)} for key in sys.argv[3:]}
    else:
        sys.exit("unknown phase " + phase)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()

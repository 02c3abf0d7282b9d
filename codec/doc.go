// Package codec turns cached values into bytes and back.
//
// A [Codec] has two methods, Marshal and Unmarshal. The package provides
// [MsgPack] (compact and fast, the usual choice), [JSON] (readable by other
// programs), [String] and [Bytes] (raw bytes, no framing), the [Compress]
// wrapper, and [Funcs] for codecs written as two closures:
//
//	users := codec.MsgPack[User]()
//	b, err := users.Marshal(User{ID: 1, Name: "Ada"})
//	...
//	var u User
//	err = users.Unmarshal(b, &u)
//
//	big, err := codec.Compress(codec.JSON[Report](), codec.CompressOptions{Algorithm: codec.Zstd})
//
// Cached bytes are untrusted input: another program, another version of this
// one, or a corrupted write may have put them there. Every Unmarshal in this
// package fails with an error wrapping [ErrDecode] instead of panicking, and
// none sizes an allocation from a length written in the payload without first
// checking that the payload can back it; see [MsgPack] and [Compress] for the
// exact bounds. Marshal failures wrap [ErrEncode].
//
// The package imports no Redis code; the cache package stores what a codec
// produces.
package codec

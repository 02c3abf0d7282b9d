// Package keyname names the keys aside writes besides a cache's value keys,
// for the cache package and the tools that read what it wrote:
//
//	<ns>:<part>          a value key
//	<ns>#lease{...}      the lease key of a value key, in plain mode
//	<ns>#tag:<tag>       the index of a tag, a set of value keys
//	<ns>#clear           the namespace's generation, moved by Clear
//
// The lease key begins with the namespace and '#', which no value key of any
// cache can (a namespace holds letters, digits and "_-." only), so no Get,
// pattern or tag ever meets it as a value; its first '{' is right after
// "#lease", so its hash tag is the one written there: the value key's own
// hash tag when it has one, else the whole value key when it holds no '}',
// else a tag of the value key's slot. It names its value key: after the
// tag's '}' comes the value key's part, or nothing when the tag is the
// value key itself.
package keyname

import (
	"strconv"
	"strings"
	"sync"
)

const (
	// LeaseInfix follows the namespace in every lease key.
	LeaseInfix = "#lease{"
	// TagInfix follows the namespace in every tag index.
	TagInfix = "#tag:"
	// ClearSuffix follows the namespace in its generation's key.
	ClearSuffix = "#clear"
)

// Clear returns the key of the generation of namespace ns (without its
// ':').
func Clear(ns string) string { return ns + ClearSuffix }

// NamespaceCleared returns the namespace whose generation key is key.
func NamespaceCleared(key string) (ns string, ok bool) {
	ns, ok = strings.CutSuffix(key, ClearSuffix)
	if !ok || ns == "" || strings.ContainsAny(ns, ":#{}") {
		return "", false
	}
	return ns, true
}

// Tag returns the index of tag in namespace ns (without its ':').
func Tag(ns, tag string) string { return ns + TagInfix + tag }

// Lease returns the lease key of value key key of namespace ns (without
// its ':').
func Lease(ns, key string) string {
	part := key[len(ns)+1:]
	base := ns + LeaseInfix
	if tag, ok := HashTag(key); ok {
		return base + tag + "}" + part
	}
	if !strings.ContainsRune(key, '}') {
		return base + key + "}"
	}
	return base + slotTag(Slot(key)) + "}" + part
}

// ValueOf returns the value key whose lease key is key, and its namespace,
// when key is a lease key: "<ns>#lease{<tag>}<part>".
func ValueOf(key string) (valueKey, ns string, ok bool) {
	i := strings.IndexByte(key, '#')
	if i <= 0 || !strings.HasPrefix(key[i:], LeaseInfix) || strings.IndexByte(key[:i], ':') >= 0 {
		return "", "", false
	}
	ns = key[:i]
	rest := key[i+len(LeaseInfix):]
	j := strings.IndexByte(rest, '}')
	if j < 0 {
		return "", "", false
	}
	if part := rest[j+1:]; part != "" {
		return ns + ":" + part, ns, true
	}
	if !strings.HasPrefix(rest[:j], ns+":") {
		return "", "", false
	}
	return rest[:j], ns, true
}

// HashTag returns what Redis Cluster hashes of key when key has a hash
// tag: the bytes between its first '{' and the first '}' after it, if any.
func HashTag(key string) (string, bool) {
	i := strings.IndexByte(key, '{')
	if i < 0 {
		return "", false
	}
	j := strings.IndexByte(key[i+1:], '}')
	if j <= 0 {
		return "", false
	}
	return key[i+1 : i+1+j], true
}

// Slot is Redis Cluster's slot of key.
func Slot(key string) uint16 {
	if tag, ok := HashTag(key); ok {
		key = tag
	}
	return crc16(key) & 16383
}

// crc16 is CRC-16/XMODEM, the hash of Redis Cluster.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

var (
	slotTagsOnce sync.Once
	slotTags     [16384]string
)

// slotTag returns the shortest decimal number (the first one found) whose
// slot is s: a hash tag that puts a key in slot s.
func slotTag(s uint16) string {
	slotTagsOnce.Do(func() {
		left := len(slotTags)
		for n := 0; left > 0; n++ {
			tag := strconv.Itoa(n)
			if sl := crc16(tag) & 16383; slotTags[sl] == "" {
				slotTags[sl] = tag
				left--
			}
		}
	})
	return slotTags[s]
}

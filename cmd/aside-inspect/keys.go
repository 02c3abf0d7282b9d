package main

import (
	"strconv"
	"strings"
	"sync"
)

// The names aside gives its keys (see cache/plain.go and cache/tags.go,
// which keep these functions unexported; the copies here must follow them):
//
//	<ns>:<part>          a value key
//	<ns>#lease{...}      the lease key of a value key, in plain mode
//	<ns>#tag:<tag>       the index of a tag, a set of value keys
//
// A namespace is made of letters, digits and "_-." only.

const (
	leaseInfix = "#lease{"
	tagInfix   = "#tag:"
)

// validNamespace reports whether ns is a namespace a cache accepts.
func validNamespace(ns string) bool {
	if ns == "" {
		return false
	}
	for i := 0; i < len(ns); i++ {
		c := ns[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// namespaceOf returns the namespace of a value key "<ns>:<part>".
func namespaceOf(key string) (string, bool) {
	i := strings.IndexByte(key, ':')
	if i <= 0 || !validNamespace(key[:i]) {
		return "", false
	}
	return key[:i], true
}

// tagOf returns the namespace and tag of a tag index "<ns>#tag:<tag>".
func tagOf(key string) (ns, tag string, ok bool) {
	i := strings.IndexByte(key, '#')
	if i <= 0 || !strings.HasPrefix(key[i:], tagInfix) || !validNamespace(key[:i]) {
		return "", "", false
	}
	return key[:i], key[i+len(tagInfix):], true
}

// leaseKey returns the lease key of value key key of namespace ns (without
// its ':'), as cache/plain.go leaseKey does.
func leaseKey(ns, key string) string {
	part := key[len(ns)+1:]
	base := ns + leaseInfix
	if tag, ok := hashTag(key); ok {
		return base + tag + "}" + part
	}
	if !strings.ContainsRune(key, '}') {
		return base + key + "}"
	}
	return base + slotTag(slot(key)) + "}" + part
}

// valueKeyOf returns the value key whose lease key is key, when key is a
// lease key, as cache/plain.go valueKeyOf does.
func valueKeyOf(key string) (valueKey, ns string, ok bool) {
	i := strings.IndexByte(key, '#')
	if i <= 0 || !strings.HasPrefix(key[i:], leaseInfix) || strings.IndexByte(key[:i], ':') >= 0 {
		return "", "", false
	}
	ns = key[:i]
	rest := key[i+len(leaseInfix):]
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

// hashTag returns what Redis Cluster hashes of key when key has a hash tag.
func hashTag(key string) (string, bool) {
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

// slot is Redis Cluster's slot of key.
func slot(key string) uint16 {
	if tag, ok := hashTag(key); ok {
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
// slot is s.
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

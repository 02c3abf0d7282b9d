package main

import (
	"strings"

	"github.com/aside-go/aside/internal/keyname"
)

// The names aside gives its keys (package keyname, which the cache package
// uses too):
//
//	<ns>:<part>          a value key
//	<ns>#lease{...}      the lease key of a value key, in plain mode
//	<ns>#tag:<tag>       the index of a tag, a set of value keys
//
// A namespace is made of letters, digits and "_-." only.

const (
	leaseInfix = keyname.LeaseInfix
	tagInfix   = keyname.TagInfix
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
// its ':').
func leaseKey(ns, key string) string { return keyname.Lease(ns, key) }

// valueKeyOf returns the value key whose lease key is key, when key is a
// lease key.
func valueKeyOf(key string) (valueKey, ns string, ok bool) { return keyname.ValueOf(key) }

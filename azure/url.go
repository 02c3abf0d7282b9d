package azure

import (
	"net/url"
	"strconv"
	"strings"
)

// insecureParams are URL parameters by which other clients turn certificate
// verification off. ParseURL refuses them when they ask for it, rather than
// ignoring them: a user who wrote one expects it to work.
var insecureParams = map[string]bool{
	"skip_verify":              true, // rueidis
	"insecure_skip_verify":     true,
	"tls_insecure_skip_verify": true,
	"tls_skip_verify":          true,
	"skipverify":               true,
	"insecureskipverify":       true,
	"insecure":                 true,
}

// ParseURL reads a URL of the form
//
//	rediss://:<access key>@<name>.<region>.redis.azure.net:10000?clustering=enterprise
//
// into Options. Without a password Options.AccessKey stays empty, which means
// Microsoft Entra ID (set Options.Credential, or rely on
// DefaultAzureCredential). The port defaults to 10000; the user, when given,
// must be "default"; the path may only name database 0. An access key holding
// '/' (Azure keys are base64) must be percent-encoded: url.UserPassword("",
// key) in a url.URL does it.
//
// The only parameter is clustering (oss, enterprise or non-clustered; see
// [Clustering]). The scheme must be rediss: redis:// is plain TCP and is
// refused with [ErrInsecure], as is any parameter that turns certificate
// verification off (skip_verify, insecure_skip_verify, ssl_cert_reqs=none and
// the like). Errors never quote the URL, which may hold the key.
func ParseURL(rawURL string) (Options, error) {
	// A '/', '?' or '#' in the user information ends the authority early,
	// and what url.Parse would then report (or accept) is part of the key.
	if i := strings.Index(rawURL, "://"); i >= 0 {
		if at := strings.LastIndex(rawURL, "@"); at > i && strings.ContainsAny(rawURL[i+3:at], "/?#") {
			return Options{}, invalid("URL", "has '/', '?' or '#' in its access key: percent-encode the key (url.UserPassword does)")
		}
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error quotes the whole URL, and its inner errors quote pieces
		// of it: neither is passed on.
		return Options{}, invalid("URL", "does not parse (not quoted here: it may hold an access key)")
	}
	switch u.Scheme {
	case "rediss":
	case "redis":
		return Options{}, insecure("URL scheme", "redis:// is plain TCP: Azure Managed Redis takes TLS only, use rediss://")
	default:
		return Options{}, invalid("URL scheme", "%q is not rediss", u.Scheme)
	}
	if u.Opaque != "" || u.Hostname() == "" {
		return Options{}, invalid("URL", "has no host (expected rediss://[:key@]host[:port])")
	}
	o := Options{Host: u.Hostname()}
	if strings.Contains(o.Host, ":") {
		o.Host = "[" + o.Host + "]" // an IPv6 address, as Options.Host wants it
	}
	if p := u.Port(); p != "" {
		if o.Port, err = strconv.Atoi(p); err != nil || o.Port < 1 || o.Port > 65535 {
			return Options{}, invalid("URL port", "is not a port number")
		}
	}
	if u.User != nil {
		if name := u.User.Username(); name != "" && name != "default" {
			return Options{}, invalid("URL user", "must be empty or \"default\": an access key authenticates the default user, and Entra ID takes its user from the token")
		}
		key, ok := u.User.Password()
		if !ok || key == "" {
			return Options{}, invalid("URL password", "is empty: give the access key, or no user information at all for Entra ID")
		}
		o.AccessKey = key
	}
	switch u.Path {
	case "", "/", "/0":
	default:
		return Options{}, invalid("URL path", "must be empty or /0: Azure Managed Redis has database 0 only")
	}
	if u.Fragment != "" {
		return Options{}, invalid("URL fragment", "is not allowed")
	}
	query, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return Options{}, invalid("URL query", "does not parse")
	}
	for name, values := range query {
		if len(values) != 1 {
			return Options{}, invalid("URL parameter "+name, "is given %d times", len(values))
		}
		v := values[0]
		switch lower := strings.ToLower(name); {
		case lower == "clustering":
			if err := o.Clustering.UnmarshalText([]byte(v)); err != nil {
				return Options{}, err
			}
		case insecureParams[lower]:
			// An empty value asks for it, as rueidis reads skip_verify; so
			// does anything that is not a clear "false".
			if off, err := strconv.ParseBool(v); err != nil || off {
				return Options{}, insecure("URL parameter "+name, "turns certificate verification off")
			}
		case lower == "ssl_cert_reqs":
			if !strings.EqualFold(v, "required") && !strings.EqualFold(v, "cert_required") {
				return Options{}, insecure("URL parameter "+name, "other than required turns certificate verification off")
			}
		case lower == "ssl" || lower == "tls":
			if on, err := strconv.ParseBool(v); err != nil || !on {
				return Options{}, insecure("URL parameter "+name, "must not turn TLS off")
			}
		default:
			return Options{}, invalid("URL parameter", "%q is not supported (the only one is clustering)", name)
		}
	}
	return o, nil
}

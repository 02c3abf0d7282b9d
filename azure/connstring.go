package azure

import (
	"crypto/tls"
	"net"
	"strconv"
	"strings"
	"time"
)

// ParseConnectionString reads the comma-separated connection string of
// StackExchange.Redis, the form the Azure portal and most tools hand out,
//
//	shop.westeurope.redis.azure.net:10000,password=<access key>,ssl=True,abortConnect=False
//
// into Options. The string names one endpoint, host or host:port (the port
// defaults to 10000; an IPv6 address is written [addr]:port), and options
// name=value, whose names are matched ignoring case, as StackExchange.Redis
// does; space around each part is ignored, and so are empty parts. Each
// option may be given once. Without a password Options.AccessKey stays
// empty, which means Microsoft Entra ID, as for [ParseURL].
//
// The options and what they become:
//
//	password                access key (Options.AccessKey)
//	user                    empty or "default": an access key authenticates the default user
//	ssl                     true (TLS is always on: false is refused with ErrInsecure)
//	sslHost                 the name the certificate must hold (Options.TLSConfig.ServerName)
//	sslProtocols            tls12, tls13 or both ("tls12|tls13"): the TLS versions allowed;
//	                        ssl3, tls and tls11 are refused with ErrInsecure
//	connectTimeout          milliseconds: Options.Base.Dialer.Timeout
//	syncTimeout             milliseconds: Options.Base.ConnWriteTimeout, how long rueidis
//	asyncTimeout              waits for replies before it drops the connection (the larger of the two)
//	keepAlive               seconds: Options.Base.Dialer.KeepAlive (-1, StackExchange's default: rueidis')
//	name, clientName        CLIENT SETNAME (Options.Base.ClientName)
//	defaultDatabase         0 only: Azure Managed Redis has database 0 only
//	protocol                resp3 (aside needs RESP3 for client-side caching)
//	clustering              aside's own: oss, enterprise or non-clustered (see [Clustering])
//	abortConnect            accepted, no effect: cache.Connect succeeds while Redis is
//	                          unreachable (abortConnect=false) unless given cache.RequireRedis()
//	connectRetry            accepted, no effect: rueidis and cache.Connect reconnect on their own
//	allowAdmin              accepted, no effect: rueidis does not hold commands back
//
// Any other option is an error naming it: the other options of
// StackExchange.Redis (serviceName, proxy, tunnel, channelPrefix,
// checkCertificateRevocation, ...) as not supported, unknown ones as
// unknown. Errors never quote a value, nor a name that could be a piece of
// the access key (one right after the password, or one that is not a short
// identifier); like StackExchange.Redis, the string cannot hold a key with a
// comma in it (Azure keys are base64, which has none).
func ParseConnectionString(s string) (Options, error) {
	var (
		o        Options
		endpoint string
		seen     = map[string]bool{}
		tlsCfg   *tls.Config
		minV     uint16
		maxV     uint16
		// afterKey: the previous part was the password, so that this one
		// may be the rest of a key holding a comma.
		afterKey bool
	)
	setTLS := func() *tls.Config {
		if tlsCfg == nil {
			tlsCfg = &tls.Config{}
		}
		return tlsCfg
	}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, value, isOption := strings.Cut(part, "=")
		mayBeKey := afterKey
		afterKey = false
		if !isOption {
			if endpoint != "" {
				return Options{}, invalid("connection string", "names a second endpoint (not quoted: it may be a piece of the access key); Azure Managed Redis has one")
			}
			endpoint = part
			continue
		}
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		lower := strings.ToLower(name)
		if lower == "clientname" {
			lower = "name"
		}
		if known(lower) {
			if seen[lower] {
				return Options{}, invalid("connection string option "+name, "is given twice")
			}
			seen[lower] = true
		}
		switch lower {
		case "password":
			if value == "" {
				return Options{}, invalid("connection string option password", "is empty: give the access key, or no password at all for Entra ID")
			}
			o.AccessKey = value
			afterKey = true
		case "user":
			if value != "" && value != "default" {
				return Options{}, invalid("connection string option user", "must be empty or \"default\": an access key authenticates the default user, and Entra ID takes its user from the token")
			}
		case "ssl":
			on, err := strconv.ParseBool(value)
			if err != nil {
				return Options{}, invalid("connection string option "+name, "is not true or false")
			}
			if !on {
				return Options{}, insecure("connection string option "+name, "must not turn TLS off: Azure Managed Redis takes TLS only")
			}
		case "sslhost":
			if value == "" {
				return Options{}, invalid("connection string option "+name, "is empty")
			}
			setTLS().ServerName = value
		case "sslprotocols":
			for p := range strings.SplitSeq(value, "|") {
				var v uint16
				switch strings.ToLower(strings.TrimSpace(p)) {
				case "tls12":
					v = tls.VersionTLS12
				case "tls13":
					v = tls.VersionTLS13
				case "none", "":
					continue // the system's choice
				case "ssl2", "ssl3", "tls", "tls11", "default":
					return Options{}, insecure("connection string option "+name, "allows a protocol older than TLS 1.2")
				default:
					return Options{}, invalid("connection string option "+name, "names a protocol other than tls12 and tls13")
				}
				if minV == 0 || v < minV {
					minV = v
				}
				maxV = max(maxV, v)
			}
		case "connecttimeout":
			d, ok := millis(value)
			if !ok {
				return Options{}, invalid("connection string option "+name, notMillis)
			}
			o.Base.Dialer.Timeout = d
		case "synctimeout", "asynctimeout":
			d, ok := millis(value)
			if !ok {
				return Options{}, invalid("connection string option "+name, notMillis)
			}
			o.Base.ConnWriteTimeout = max(o.Base.ConnWriteTimeout, d)
		case "keepalive":
			n, err := strconv.Atoi(value)
			switch {
			case err != nil || n < -1:
				return Options{}, invalid("connection string option "+name, "is not a number of seconds (or -1)")
			case n > 0:
				o.Base.Dialer.KeepAlive = time.Duration(n) * time.Second
			}
		case "name":
			o.Base.ClientName = value
		case "defaultdatabase":
			if value != "0" {
				return Options{}, invalid("connection string option "+name, "must be 0: Azure Managed Redis has database 0 only")
			}
		case "protocol":
			switch strings.ToLower(value) {
			case "resp3", "3":
			default:
				return Options{}, invalid("connection string option "+name, "must be resp3: aside needs RESP3 for client-side caching")
			}
		case "clustering":
			if err := o.Clustering.UnmarshalText([]byte(value)); err != nil {
				return Options{}, invalid("connection string option "+name, "is not one of oss, enterprise, non-clustered")
			}
		case "abortconnect", "allowadmin":
			if _, err := strconv.ParseBool(value); err != nil {
				return Options{}, invalid("connection string option "+name, "is not true or false")
			}
		case "connectretry":
			if n, err := strconv.Atoi(value); err != nil || n < 0 {
				return Options{}, invalid("connection string option "+name, "is not a number of attempts")
			}
		default:
			if unsupported[lower] {
				return Options{}, invalid("connection string option "+name, "is a StackExchange.Redis option that azure does not support")
			}
			if mayBeKey || !quotable(name) {
				return Options{}, invalid("connection string", "has an unknown option (its name is not quoted: it may be a piece of the access key)")
			}
			return Options{}, invalid("connection string option "+name, "is unknown")
		}
	}
	if endpoint == "" {
		return Options{}, invalid("connection string", "names no endpoint (expected host[:port] first)")
	}
	host, port, err := splitEndpoint(endpoint)
	if err != nil {
		return Options{}, err
	}
	o.Host, o.Port = host, port
	if minV != 0 {
		cfg := setTLS()
		cfg.MinVersion, cfg.MaxVersion = minV, maxV
	}
	o.TLSConfig = tlsCfg
	return o, nil
}

// known reports whether lower is an option that ParseConnectionString reads.
func known(lower string) bool {
	switch lower {
	case "password", "user", "ssl", "sslhost", "sslprotocols", "connecttimeout", "synctimeout", "asynctimeout",
		"keepalive", "name", "defaultdatabase", "protocol", "clustering", "abortconnect", "allowadmin", "connectretry":
		return true
	}
	return false
}

// unsupported are the other options of StackExchange.Redis' connection
// strings, in lower case.
var unsupported = map[string]bool{
	"servicename": true, "proxy": true, "tunnel": true, "channelprefix": true, "configchannel": true,
	"configcheckseconds": true, "checkcertificaterevocation": true, "resolvedns": true, "tiebreaker": true,
	"version": true, "setlib": true, "highprioritysocketthreads": true, "responsetimeout": true,
	"writebuffer": true, "heartbeatinterval": true, "heartbeatconsistencychecks": true,
	"includedetailinexceptions": true, "includeperformancecountersinexceptions": true,
	"highintegrity": true, "library": true, "sslcertificate": true,
}

// quotable reports whether an option's name may appear in an error: a short
// identifier, as every option of StackExchange.Redis is ('$' starts its
// command renames).
func quotable(name string) bool {
	if name == "" || len(name) > 40 {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '$' || r == '_' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// millis reads a whole number of milliseconds, from 1 to a day.
func millis(value string) (time.Duration, bool) {
	n, err := strconv.ParseInt(value, 10, 64)
	if err != nil || n < 1 || n > int64(24*time.Hour/time.Millisecond) {
		return 0, false
	}
	return time.Duration(n) * time.Millisecond, true
}

const notMillis = "is not a whole number of milliseconds from 1 to a day"

// splitEndpoint reads host or host:port, an IPv6 address in brackets.
func splitEndpoint(ep string) (string, int, error) {
	host, portStr := ep, ""
	switch {
	case strings.HasPrefix(ep, "["):
		end := strings.Index(ep, "]")
		if end < 0 {
			return "", 0, invalid("connection string endpoint", "has a '[' without ']'")
		}
		host = ep[:end+1]
		switch rest := ep[end+1:]; {
		case rest == "":
		case strings.HasPrefix(rest, ":"):
			portStr = rest[1:]
		default:
			return "", 0, invalid("connection string endpoint", "has something other than :port after ']'")
		}
		if net.ParseIP(host[1:end]) == nil {
			return "", 0, invalid("connection string endpoint", "has brackets around something other than an IPv6 address")
		}
	case strings.Count(ep, ":") > 1:
		return "", 0, invalid("connection string endpoint", "has more than one ':' (write an IPv6 address as [addr]:port)")
	case strings.Contains(ep, ":"):
		host, portStr, _ = strings.Cut(ep, ":")
	}
	if host == "" || strings.ContainsAny(host, "/@?# \t\r\n=") {
		return "", 0, invalid("connection string endpoint", "is not host[:port] (not quoted: it may be a piece of the access key)")
	}
	port := 0
	if portStr != "" {
		p, err := strconv.Atoi(portStr)
		if err != nil || p < 1 || p > 65535 {
			return "", 0, invalid("connection string endpoint", "has a port that is not a number in 1..65535")
		}
		port = p
	}
	return host, port, nil
}

package azure

import (
	"crypto/tls"
	"strings"
)

// tlsConfig builds the client TLS configuration from resolved options:
// verification on, TLS 1.2 at least, and the server name set to the host.
//
// The server name matters beyond the first connection: under the OSS policy
// the cluster reports its shards by address (often an IP), and rueidis dials
// each with this same configuration. Without an explicit ServerName, crypto/tls
// would check the certificate against that IP and fail, or, worse, a client
// that "fixes" the failure by skipping verification would accept anyone.
func tlsConfig(o Options) (*tls.Config, error) {
	cfg := &tls.Config{}
	if o.TLSConfig != nil {
		cfg = o.TLSConfig.Clone()
	}
	switch {
	case cfg.InsecureSkipVerify:
		return nil, insecure("TLSConfig.InsecureSkipVerify", "is set: certificate verification cannot be turned off")
	case cfg.MinVersion != 0 && cfg.MinVersion < tls.VersionTLS12:
		return nil, insecure("TLSConfig.MinVersion", "%s is below TLS 1.2", tls.VersionName(cfg.MinVersion))
	case cfg.MaxVersion != 0 && cfg.MaxVersion < tls.VersionTLS12:
		return nil, insecure("TLSConfig.MaxVersion", "%s is below TLS 1.2", tls.VersionName(cfg.MaxVersion))
	}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	if cfg.ServerName == "" {
		cfg.ServerName = strings.TrimSuffix(strings.TrimPrefix(o.Host, "["), "]")
	}
	return cfg, nil
}

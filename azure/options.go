package azure

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/redis/rueidis"
)

const (
	// DefaultPort is the TLS port of Azure Managed Redis.
	DefaultPort = 10000
	// Scope is the OAuth scope of the Entra ID tokens Azure Managed Redis
	// accepts.
	Scope = "https://redis.azure.com/.default"
	// DefaultTokenTimeout bounds one token request when
	// [Options.TokenTimeout] is 0.
	DefaultTokenTimeout = 10 * time.Second
	// DefaultTokenAttempts is how many times a token request is tried when
	// [Options.TokenAttempts] is 0.
	DefaultTokenAttempts = 3
	// DefaultTokenRetryDelay is the pause before the second attempt of a
	// token request when [Options.TokenRetryDelay] is 0; it doubles for each
	// further attempt.
	DefaultTokenRetryDelay = 200 * time.Millisecond
)

// Options describes one Azure Managed Redis instance and how to authenticate
// to it. At most one of AccessKey and Credential may be set; when neither is,
// Microsoft Entra ID is used with azidentity's DefaultAzureCredential.
//
// Options never prints its access key: String, GoString, Format and LogValue
// all redact it, so an Options can be logged as it is. The
// rueidis.ClientOption built from it does hold the key, in Password.
type Options struct {
	// Host is the instance's host name, <name>.<region>.redis.azure.net. It is
	// also the name the server certificate must be valid for, unless
	// TLSConfig.ServerName says otherwise.
	Host string
	// Port is the TLS port. 0 means DefaultPort (10000).
	Port int

	// AccessKey authenticates with one of the instance's access keys, as the
	// default user. Leave it empty to use Microsoft Entra ID.
	AccessKey string
	// Credential obtains Microsoft Entra ID tokens (scope [Scope]). Any
	// azcore.TokenCredential works: a managed identity, a workload identity,
	// a service principal, the Azure CLI. nil with an empty AccessKey means
	// azidentity.NewDefaultAzureCredential.
	Credential azcore.TokenCredential

	// Clustering is the instance's clustering policy. The zero value is OSS,
	// the policy Azure creates an instance with unless told otherwise.
	Clustering Clustering

	// TLSConfig is the base TLS configuration, cloned before use: set RootCAs
	// to trust a private CA, or ServerName when Host is an address that the
	// certificate does not name (a private endpoint's IP). Certificate
	// verification cannot be turned off and the minimum version is TLS 1.2:
	// InsecureSkipVerify, or a MinVersion or MaxVersion below TLS 1.2, is an
	// error wrapping [ErrInsecure]. nil means the system roots.
	TLSConfig *tls.Config

	// TokenTimeout bounds one token request. rueidis asks for credentials
	// without a context, when a connection opens and when it must
	// re-authenticate, so this bound is what keeps a hung identity endpoint
	// from hanging the connection. 0 means DefaultTokenTimeout.
	TokenTimeout time.Duration
	// TokenAttempts is how many times a token request is tried before its
	// failure is returned. Errors the credential marks as not retriable (a
	// NonRetriable method, as azidentity's errors have: the Azure SDK already
	// retried the HTTP call) are returned at once. 0 means
	// DefaultTokenAttempts.
	TokenAttempts int
	// TokenRetryDelay is the pause before the second attempt, doubled for
	// each further one and randomised by up to half to spread retries out.
	// 0 means DefaultTokenRetryDelay.
	TokenRetryDelay time.Duration

	// Logger receives warnings: client-side caching refused by the server
	// ([NewClient] then connects without it), or a token refresh that failed
	// while the current token is still good. nil means slog.Default().
	// Nothing logged contains a key or a token.
	Logger *slog.Logger

	// Base holds every other rueidis setting (timeouts, cache size,
	// OnInvalidations, DialCtxFn...). The fields this package sets itself
	// must be left zero: InitAddress, TLSConfig, Username, Password,
	// AuthCredentialsFn, Sentinel, and ForceSingleClient unless the policy
	// forces a single client anyway. A DialCtxFn must use the *tls.Config it
	// is given: rueidis hands it the configuration built here.
	Base rueidis.ClientOption

	// now is the clock that token lifetimes are judged by; nil means
	// time.Now. Only tests set it (see export_test.go): live connections are
	// scheduled by rueidis on the real clock.
	now func() time.Time
}

// Clustering is the clustering policy of an Azure Managed Redis instance,
// chosen when the instance is created. It decides how clients must connect.
type Clustering int

const (
	// OSS is the policy that follows the Redis Cluster specification: the
	// client asks CLUSTER SLOTS for the shards, connects to each directly
	// and sends every command to the shard of its key. It is Azure's default
	// for new instances and its recommendation for throughput. A multi-key
	// command must keep its keys in one hash slot (use a {hash tag}).
	//
	// rueidis falls back to a single client when the server turns out not to
	// be a cluster, so OSS also connects to a non-clustered instance.
	OSS Clustering = iota
	// Enterprise is the policy with one endpoint: a proxy in front of the
	// shards routes each command, and the server rejects the CLUSTER
	// commands. The client is forced to a single-node client. The proxy runs
	// DEL, UNLINK, EXISTS, MGET, MSET and TOUCH across hash slots (only
	// MGET, EXISTS and TOUCH with active geo-replication); every other
	// multi-key command, script and transaction must keep its keys in one
	// slot. [Clustering.CrossSlot] answers which commands may span slots.
	Enterprise
	// NonClustered is the policy of an instance that is not sharded (sizes
	// up to 25 GB): one endpoint, one shard, every multi-key command allowed.
	// The client is forced to a single-node client.
	NonClustered
)

// String returns the policy's name as [ParseURL] and UnmarshalText accept it:
// "oss", "enterprise" or "non-clustered".
func (c Clustering) String() string {
	switch c {
	case OSS:
		return "oss"
	case Enterprise:
		return "enterprise"
	case NonClustered:
		return "non-clustered"
	}
	return "Clustering(" + strconv.Itoa(int(c)) + ")"
}

// MarshalText returns the policy's name, for configuration files.
func (c Clustering) MarshalText() ([]byte, error) {
	if !c.valid() {
		return nil, fmt.Errorf("%w: Clustering %d is not a policy", ErrInvalidOptions, int(c))
	}
	return []byte(c.String()), nil
}

// UnmarshalText reads a policy's name, ignoring case: "oss", "enterprise" or
// "non-clustered" ("nocluster" and "none" are accepted too, as are Azure's
// own names "OSSCluster", "EnterpriseCluster" and "NoCluster").
func (c *Clustering) UnmarshalText(text []byte) error {
	switch strings.ToLower(strings.TrimSpace(string(text))) {
	case "oss", "osscluster":
		*c = OSS
	case "enterprise", "enterprisecluster":
		*c = Enterprise
	case "non-clustered", "nonclustered", "nocluster", "none":
		*c = NonClustered
	default:
		return fmt.Errorf("%w: Clustering %q is not one of oss, enterprise, non-clustered", ErrInvalidOptions, text)
	}
	return nil
}

func (c Clustering) valid() bool { return c >= OSS && c <= NonClustered }

// singleClient reports whether rueidis must be kept from probing for a
// cluster: behind the Enterprise proxy CLUSTER SLOTS is refused, and a
// non-clustered instance has one shard to talk to anyway.
func (c Clustering) singleClient() bool { return c != OSS }

// CrossSlot reports whether the multi-key command (its name, in any case) may
// name keys of different hash slots under the policy. Under OSS none may;
// under Enterprise the proxy splits DEL, UNLINK, EXISTS, MGET, MSET and TOUCH
// across shards (an instance with active geo-replication allows only MGET,
// EXISTS and TOUCH: group keys by slot there); NonClustered has one shard and
// allows all. Callers that batch keys use it to decide whether to group them
// by slot first.
func (c Clustering) CrossSlot(command string) bool {
	switch c {
	case NonClustered:
		return true
	case Enterprise:
		switch strings.ToUpper(command) {
		case "DEL", "UNLINK", "EXISTS", "MGET", "MSET", "TOUCH":
			return true
		}
	}
	return false
}

// invalid builds the error for one bad setting.
func invalid(setting, format string, args ...any) error {
	return fmt.Errorf("%w: %s %s", ErrInvalidOptions, setting, fmt.Sprintf(format, args...))
}

// insecure builds the error for a setting that weakens TLS.
func insecure(setting, format string, args ...any) error {
	return fmt.Errorf("%w: %s %s", ErrInsecure, setting, fmt.Sprintf(format, args...))
}

// resolve checks every setting and returns a copy with the defaults filled
// in. It does not create the default credential: that reads the environment
// and may fail, which ClientOption reports as a credential error.
func (o Options) resolve() (Options, error) {
	r := o
	switch {
	case o.Host == "":
		return r, invalid("Host", "is empty")
	case strings.ContainsAny(o.Host, "/@?# \t\r\n"):
		return r, invalid("Host", "%q is not a host name (give the port in Port, and no scheme or path)", o.Host)
	case strings.Contains(o.Host, ":") && !strings.HasPrefix(o.Host, "["):
		// "name:10000" would become "name:10000:10000". A bare IPv6
		// address has colons too, but must then be written [::1].
		return r, invalid("Host", "%q contains a port: give it in Port", o.Host)
	}
	if r.Port == 0 {
		r.Port = DefaultPort
	}
	if r.Port < 1 || r.Port > 65535 {
		return r, invalid("Port", "%d is out of range 1..65535", o.Port)
	}
	if o.AccessKey != "" && o.Credential != nil {
		return r, invalid("AccessKey", "and Credential are both set: choose one way to authenticate")
	}
	if !o.Clustering.valid() {
		return r, invalid("Clustering", "%d is not a policy", int(o.Clustering))
	}
	if o.TokenTimeout < 0 {
		return r, invalid("TokenTimeout", "%v is negative", o.TokenTimeout)
	}
	if o.TokenAttempts < 0 {
		return r, invalid("TokenAttempts", "%d is negative", o.TokenAttempts)
	}
	if o.TokenRetryDelay < 0 {
		return r, invalid("TokenRetryDelay", "%v is negative", o.TokenRetryDelay)
	}
	if r.TokenTimeout == 0 {
		r.TokenTimeout = DefaultTokenTimeout
	}
	if r.TokenAttempts == 0 {
		r.TokenAttempts = DefaultTokenAttempts
	}
	if r.TokenRetryDelay == 0 {
		r.TokenRetryDelay = DefaultTokenRetryDelay
	}
	if r.Logger == nil {
		r.Logger = slog.Default()
	}
	if r.now == nil {
		r.now = time.Now
	}
	if err := checkBase(&o.Base, o.Clustering); err != nil {
		return r, err
	}
	return r, nil
}

// checkBase refuses Base fields that this package owns, so that a value the
// caller set is never silently replaced.
func checkBase(b *rueidis.ClientOption, c Clustering) error {
	switch {
	case len(b.InitAddress) != 0:
		return invalid("Base.InitAddress", "must be empty: the address comes from Host and Port")
	case b.TLSConfig != nil:
		return invalid("Base.TLSConfig", "must be nil: use Options.TLSConfig")
	case b.Username != "" || b.Password != "":
		return invalid("Base.Username/Password", "must be empty: use AccessKey or Credential")
	case b.AuthCredentialsFn != nil:
		return invalid("Base.AuthCredentialsFn", "must be nil: use Credential")
	case b.Sentinel.MasterSet != "":
		return invalid("Base.Sentinel", "must be empty: Azure Managed Redis has no sentinels")
	case b.ForceSingleClient && !c.singleClient():
		return invalid("Base.ForceSingleClient", "contradicts Clustering %s: set Clustering to enterprise or non-clustered instead", c)
	}
	return nil
}

// address is Host:Port of resolved options; an IPv6 host keeps its brackets.
func (o Options) address() string {
	return o.Host + ":" + strconv.Itoa(o.Port)
}

// auth describes how the options authenticate, without the secret.
func (o Options) auth() string {
	switch {
	case o.AccessKey != "":
		return "access key [redacted]"
	case o.Credential != nil:
		return fmt.Sprintf("Entra ID (%T)", o.Credential)
	default:
		return "Entra ID (DefaultAzureCredential)"
	}
}

// String describes the options without the access key:
//
//	azure.Options{Host: "name.region.redis.azure.net", Port: 10000, Auth: access key [redacted], Clustering: oss}
func (o Options) String() string {
	port := o.Port
	if port == 0 {
		port = DefaultPort
	}
	return fmt.Sprintf("azure.Options{Host: %q, Port: %d, Auth: %s, Clustering: %s}", o.Host, port, o.auth(), o.Clustering)
}

// GoString is String, so that %#v redacts the key too.
func (o Options) GoString() string { return o.String() }

// Format writes String for every verb, so that no verb (%v, %+v, %#v, %d, %x,
// %q...) prints the fields one by one, the access key among them.
func (o Options) Format(f fmt.State, verb rune) {
	s := o.String()
	if verb == 'q' {
		s = strconv.Quote(s)
	}
	_, _ = f.Write([]byte(s))
}

// LogValue describes the options to log/slog without the access key.
func (o Options) LogValue() slog.Value {
	port := o.Port
	if port == 0 {
		port = DefaultPort
	}
	return slog.GroupValue(
		slog.String("host", o.Host),
		slog.Int("port", port),
		slog.String("auth", o.auth()),
		slog.String("clustering", o.Clustering.String()),
	)
}

// Package azure connects aside (or any rueidis user) to Azure Managed Redis:
// host <name>.<region>.redis.azure.net, port 10000, TLS 1.2 or later, and
// authentication by access key or by Microsoft Entra ID.
//
// [ClientOption] turns [Options] into a rueidis.ClientOption; [NewClient]
// connects a rueidis.Client with it. Hand the option to cache.Connect to build
// aside caches on it:
//
//	opt, err := azure.ClientOption(ctx, azure.Options{
//		Host:       "shop.westeurope.redis.azure.net",
//		Credential: cred, // any azcore.TokenCredential; nil: DefaultAzureCredential
//		Clustering: azure.Enterprise,
//	})
//	if err != nil { ... }
//	client, err := cache.Connect(opt)
//	if err != nil { ... }
//	defer client.Close()
//	products, err := cache.New(client, cache.Options[string, Product]{Namespace: "product", Loader: load})
//
// # URLs and connection strings
//
// [ParseURL] reads a rediss:// URL; [ParseConnectionString] reads the
// comma-separated form of StackExchange.Redis that the Azure portal and most
// tools hand out:
//
//	o, err := azure.ParseConnectionString("shop.westeurope.redis.azure.net:10000,password=<key>,ssl=True,abortConnect=False")
//
// Its options are matched ignoring case, as StackExchange.Redis matches them;
// each that means something here is mapped onto Options (sslHost onto
// TLSConfig.ServerName, connectTimeout, syncTimeout, keepAlive and name onto
// Base), abortConnect, connectRetry and allowAdmin are accepted without
// effect, and any other option is an error that names it. Neither function
// ever quotes the access key in an error, and [Options] never prints it.
//
// # TLS
//
// Certificate verification is always on and cannot be turned off: a
// TLSConfig with InsecureSkipVerify, or a URL asking for it, is refused with
// [ErrInsecure]. The server name is Host even when rueidis dials a shard by
// IP, as it does under the OSS clustering policy.
//
// # Entra ID
//
// Tokens are requested for [Scope]. The user name of AUTH is the token's oid
// claim (the principal's object ID; a token without one fails with
// [ErrNoOID]); the password is the token. Azure closes a connection whose
// token expires unless it has sent AUTH with a fresh one, so every connection
// re-authenticates on its own, at a random moment between 70% and 80% of the
// token's life (earlier when the token's RefreshOn says so): rueidis calls the
// AuthCredentialsFn built here again at the RefreshAfter it returned. The
// connections of a client share one token and one request at a time. A request
// is bounded by Options.TokenTimeout and tried Options.TokenAttempts times with
// growing pauses; a failure the Azure SDK marks as final is not retried. When
// a refresh fails, connections keep the current token and try again until
// shortly before it expires; after that, opening or refreshing a connection
// fails with an error wrapping [ErrCredential], which reaches the commands.
// No error, log record or String output contains a key or a token.
//
// # Clustering
//
// [Options.Clustering] follows the instance's clustering policy: [OSS] (the
// default, as in Azure) uses rueidis' cluster client; [Enterprise] and
// [NonClustered] force a single-node client, since the endpoint is one proxy
// or one shard. [Clustering.CrossSlot] tells which multi-key commands may span
// hash slots under each policy.
//
// # Client-side caching
//
// aside keeps values fresh in process memory with RESP3 client-side caching.
// Should the server refuse RESP3 or CLIENT TRACKING, [NewClient] (like
// cache.Connect) logs a warning and connects without it (rueidis
// DisableCache): reads then go to Redis every time instead of failing.
package azure

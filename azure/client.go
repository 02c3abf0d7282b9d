package azure

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/redis/rueidis"
)

// ClientOption builds the rueidis.ClientOption for the instance: its address,
// TLS (verified, 1.2 or later, server name = Host), the clustering policy, and
// either the access key or an AuthCredentialsFn that authenticates every
// connection with an Entra ID token and re-authenticates it before the token
// expires. Every other setting comes from o.Base.
//
// With Entra ID, ClientOption fetches the first token, bounded by ctx as well
// as TokenTimeout and TokenAttempts, so that a credential that cannot work
// fails here with an error wrapping [ErrCredential] instead of at the first
// command. The token is kept for the client's first connections.
//
// Pass the result to cache.Connect, which owns the client's invalidation hook
// and falls back to reads without client-side caching when the server refuses
// it, as [NewClient] does. The result holds the access key (in Password) or
// the token source: do not log it.
func ClientOption(ctx context.Context, o Options) (rueidis.ClientOption, error) {
	opt, _, err := clientOption(ctx, o)
	return opt, err
}

// clientOption is ClientOption that also returns the resolved options.
func clientOption(ctx context.Context, o Options) (rueidis.ClientOption, Options, error) {
	r, err := o.resolve()
	if err != nil {
		return rueidis.ClientOption{}, r, err
	}
	tlsCfg, err := tlsConfig(r)
	if err != nil {
		return rueidis.ClientOption{}, r, err
	}
	opt := r.Base
	opt.InitAddress = []string{r.address()}
	opt.TLSConfig = tlsCfg
	if r.Clustering.singleClient() {
		opt.ForceSingleClient = true
	}
	if r.AccessKey != "" {
		// Access keys authenticate the default user: rueidis sends
		// HELLO 3 AUTH default <key>.
		opt.Password = r.AccessKey
		return opt, r, nil
	}
	cred := r.Credential
	if cred == nil {
		c, err := azidentity.NewDefaultAzureCredential(nil)
		if err != nil {
			return rueidis.ClientOption{}, r, fmt.Errorf("%w: DefaultAzureCredential: %w", ErrCredential, err)
		}
		cred = c
	}
	src := newTokenSource(r, cred)
	if _, err := src.get(ctx); err != nil {
		return rueidis.ClientOption{}, r, err
	}
	opt.AuthCredentialsFn = src.credentials
	return opt, r, nil
}

// NewClient connects a rueidis client to the instance with the option built by
// [ClientOption]. ctx bounds the first token request; the connection itself is
// bounded by Base.Dialer.Timeout (rueidis' default when zero), since
// rueidis.NewClient takes no context.
//
// When the server refuses RESP3 or CLIENT TRACKING, which rueidis needs for
// client-side caching, NewClient logs a warning to Options.Logger and connects
// again with DisableCache: DoCache then reads from Redis every time, instead
// of every command failing. Applications using aside's cache should call
// cache.Connect with [ClientOption] instead, which does the same and reports
// it through Client.Tracking.
func NewClient(ctx context.Context, o Options) (rueidis.Client, error) {
	opt, r, err := clientOption(ctx, o)
	if err != nil {
		return nil, err
	}
	client, err := rueidis.NewClient(opt)
	if err != nil && errors.Is(err, rueidis.ErrNoCache) && !opt.DisableCache {
		r.Logger.Warn("azure: the server refused client-side caching (RESP3 or CLIENT TRACKING); connected without it, so every cached read goes to Redis",
			slog.String("address", r.address()), slog.Any("reason", err))
		opt.DisableCache = true
		client, err = rueidis.NewClient(opt)
	}
	if err != nil {
		return nil, fmt.Errorf("azure: connect to %s: %w", r.address(), err)
	}
	return client, nil
}

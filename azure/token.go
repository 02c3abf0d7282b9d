package azure

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/redis/rueidis"
)

// The refresh schedule, in fractions of a token's lifetime counted from when
// it was received. Azure Managed Redis closes a connection whose token
// expires unless the connection sends AUTH with a fresh token first, and
// rueidis sends that AUTH at the RefreshAfter that AuthCredentialsFn returns.
//
// From refreshFrom on, the next call for credentials fetches a new token; each
// connection is given a RefreshAfter drawn at random between refreshFrom and
// refreshUntil, so that the connections of a process (and of many processes)
// do not all re-authenticate at the same instant. The first of them fetches
// the new token and the others find it cached. The 20% left after
// refreshUntil (12 minutes of a 60-minute token) absorbs a slow or failing
// identity endpoint: the current token is still handed out on a failure, with
// a retry soon after, until graceFraction of its life before expiry.
const (
	refreshFrom  = 0.70
	refreshUntil = 0.80
	// graceFraction of a token's life, at most maxGrace, before its expiry a
	// token is no longer handed out: a connection authenticating so late
	// would be closed by the server almost at once.
	graceFraction = 0.05
	maxGrace      = 30 * time.Second
	// maxRetryDelay caps the growing pause between attempts of one request.
	maxRetryDelay = 5 * time.Second
	// minRefreshDelay keeps a RefreshAfter strictly in the future, so a
	// credential that returns nearly expired tokens cannot make rueidis spin.
	minRefreshDelay = 10 * time.Millisecond
)

// token is one Entra ID access token with its refresh schedule.
type token struct {
	username string // the oid claim
	password string // the token itself
	// staleAt is when the next call fetches a new token; latest is when
	// every connection has re-authenticated; deadline is the last moment the
	// token is handed out; expiresOn is when the server stops accepting it.
	staleAt, latest, deadline, expiresOn time.Time
}

// String keeps the token out of anything that formats a *token by mistake.
func (t *token) String() string { return "azure token [redacted]" }

// newToken reads the user name from the token and plans its refresh from its
// lifetime as seen at received. Its errors are permanent: asking again would
// return the same token.
func newToken(at azcore.AccessToken, received time.Time) (*token, error) {
	if at.Token == "" {
		return nil, fmt.Errorf("%w: the credential returned an empty token", ErrCredential)
	}
	c, err := parseClaims(at.Token)
	if err != nil {
		if errors.Is(err, ErrCredential) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrCredential, err)
	}
	exp := at.ExpiresOn
	if exp.IsZero() {
		exp = c.exp
	}
	if exp.IsZero() {
		return nil, fmt.Errorf("%w: the token has no expiry (ExpiresOn and the exp claim are both missing)", ErrCredential)
	}
	life := exp.Sub(received)
	if life <= 0 {
		return nil, fmt.Errorf("%w: the credential returned a token that expired at %s", ErrCredential, exp.UTC().Format(time.RFC3339))
	}
	t := &token{
		username:  c.oid,
		password:  at.Token,
		staleAt:   received.Add(scale(life, refreshFrom)),
		latest:    received.Add(scale(life, refreshUntil)),
		deadline:  exp.Add(-min(scale(life, graceFraction), maxGrace)),
		expiresOn: exp,
	}
	// RefreshOn is the issuer's own advice (MSAL sets it for long-lived
	// tokens). Follow it when it comes earlier than the schedule, keeping
	// the spread of the connections' refreshes behind it.
	if r := at.RefreshOn; r.After(received) && r.Before(t.staleAt) {
		t.staleAt = r
		if end := r.Add(scale(life, refreshUntil-refreshFrom)); end.Before(t.latest) {
			t.latest = end
		}
	}
	return t, nil
}

func scale(d time.Duration, f float64) time.Duration { return time.Duration(float64(d) * f) }

// tokenSource is rueidis' AuthCredentialsFn for Entra ID. One source serves
// every connection of a client: they share the current token, and at most one
// token request is in flight at a time.
type tokenSource struct {
	cred       azcore.TokenCredential
	timeout    time.Duration
	attempts   int
	retryDelay time.Duration
	logger     *slog.Logger
	now        func() time.Time

	mu     sync.Mutex // guards the fields below
	cur    *token     // the newest good token; nil before the first
	flight *flight    // the request in progress; nil when none
	// failed is the error of the last request while it is recent (until
	// holdUntil): callers in that window get it, or the current token,
	// without a request of their own, so that a client with many
	// connections does not hammer an identity endpoint that is down.
	failed    error
	holdUntil time.Time
}

// flight is one token request, shared by every caller that arrives while it
// runs. tok and err are written before done is closed.
type flight struct {
	done chan struct{}
	tok  *token
	err  error
}

// newTokenSource builds the source from resolved options.
func newTokenSource(o Options, cred azcore.TokenCredential) *tokenSource {
	return &tokenSource{
		cred:       cred,
		timeout:    o.TokenTimeout,
		attempts:   o.TokenAttempts,
		retryDelay: o.TokenRetryDelay,
		logger:     o.Logger,
		now:        o.now,
	}
}

// credentials is the AuthCredentialsFn. rueidis calls it, without a context,
// when a connection opens and at each RefreshAfter of a live connection; an
// error closes the connection (or fails the dial) and reaches the commands
// waiting on it.
func (s *tokenSource) credentials(rueidis.AuthCredentialsContext) (rueidis.AuthCredentials, error) {
	return s.get(context.Background())
}

// get returns the credentials to authenticate with now and when to do it
// again. ctx bounds the wait for a token request (rueidis' calls have none, and
// rely on TokenTimeout and TokenAttempts).
func (s *tokenSource) get(ctx context.Context) (rueidis.AuthCredentials, error) {
	s.mu.Lock()
	now := s.now()
	if t := s.cur; t != nil && now.Before(t.staleAt) {
		s.mu.Unlock()
		return t.credentials(s.schedule(t, now)), nil
	}
	if s.failed != nil && now.Before(s.holdUntil) {
		t, err := s.cur, s.failed
		s.mu.Unlock()
		return s.fallback(t, now, err)
	}
	f := s.flight
	if f == nil {
		f = &flight{done: make(chan struct{})}
		s.flight = f
		s.mu.Unlock()
		s.run(ctx, f)
	} else {
		s.mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return rueidis.AuthCredentials{}, fmt.Errorf("%w: %w", ErrCredential, ctx.Err())
		}
	}
	now = s.now()
	if f.err == nil {
		return f.tok.credentials(s.schedule(f.tok, now)), nil
	}
	s.mu.Lock()
	t := s.cur
	s.mu.Unlock()
	return s.fallback(t, now, f.err)
}

// fallback answers when the token request failed with err. A token the server
// still accepts keeps the connections alive while the identity endpoint
// recovers, and they try again soon; without one, the failure is returned.
func (s *tokenSource) fallback(t *token, now time.Time, err error) (rueidis.AuthCredentials, error) {
	if t != nil && now.Before(t.deadline) {
		return t.credentials(s.retryAt(t, now)), nil
	}
	return rueidis.AuthCredentials{}, err
}

// run performs the request of flight f and publishes its result.
func (s *tokenSource) run(ctx context.Context, f *flight) {
	// Should the credential panic, the waiters get this error rather than
	// waiting forever; the panic itself goes on up.
	f.err = fmt.Errorf("%w: the credential panicked", ErrCredential)
	defer func() {
		s.mu.Lock()
		s.flight = nil
		if f.err == nil {
			s.cur, s.failed = f.tok, nil
		} else {
			s.failed, s.holdUntil = f.err, s.now().Add(s.retryDelay)
		}
		cur := s.cur
		s.mu.Unlock()
		close(f.done)
		if f.err != nil && cur != nil && s.now().Before(cur.deadline) {
			s.logger.Warn("azure: Entra ID token refresh failed; connections keep the current token and retry",
				slog.Time("token_expires", cur.expiresOn), slog.Any("error", f.err))
		}
	}()
	f.tok, f.err = s.fetch(ctx)
}

// fetch requests a token, retrying failures that may pass.
func (s *tokenSource) fetch(ctx context.Context) (*token, error) {
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCredential, err)
		}
		at, err := s.request(ctx)
		if err == nil {
			return newToken(at, s.now())
		}
		switch {
		case ctx.Err() != nil:
			return nil, fmt.Errorf("%w: %w", ErrCredential, err)
		case permanent(err):
			return nil, fmt.Errorf("%w: not retried: %w", ErrCredential, err)
		case attempt >= s.attempts:
			return nil, fmt.Errorf("%w: %d attempts failed, the last: %w", ErrCredential, attempt, err)
		}
		if err := sleep(ctx, s.backoff(attempt)); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCredential, err)
		}
	}
}

// request makes one token request, bounded by the timeout even when the
// credential ignores its context: a credential stuck in a call would
// otherwise hold the connection that needs the token forever. Such a call is
// abandoned and its goroutine ends whenever the credential returns.
func (s *tokenSource) request(ctx context.Context) (azcore.AccessToken, error) {
	actx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	type result struct {
		at  azcore.AccessToken
		err error
	}
	done := make(chan result, 1)
	go func() {
		at, err := s.cred.GetToken(actx, policy.TokenRequestOptions{Scopes: []string{Scope}})
		done <- result{at, err}
	}()
	select {
	case r := <-done:
		return r.at, r.err
	case <-actx.Done():
		if err := ctx.Err(); err != nil {
			return azcore.AccessToken{}, err
		}
		return azcore.AccessToken{}, fmt.Errorf("no token within TokenTimeout %v: %w", s.timeout, actx.Err())
	}
}

// permanent reports whether a credential's error is final. The Azure SDK
// marks such errors with a NonRetriable method: its credentials have already
// retried the HTTP exchange by the time they give up.
func permanent(err error) bool {
	var nr interface{ NonRetriable() }
	return errors.As(err, &nr)
}

// backoff is the pause after the given failed attempt: TokenRetryDelay
// doubled per attempt, capped, and randomised down by up to half so that
// clients that failed together do not retry together.
func (s *tokenSource) backoff(attempt int) time.Duration {
	d := s.retryDelay << min(attempt-1, 16)
	if d <= 0 || d > maxRetryDelay {
		d = maxRetryDelay
	}
	return d/2 + rand.N(d/2+1)
}

// schedule picks a connection's next re-authentication within the token's
// refresh window, never in the past.
func (s *tokenSource) schedule(t *token, now time.Time) time.Time {
	at := t.staleAt
	if spread := t.latest.Sub(t.staleAt); spread > 0 {
		at = at.Add(rand.N(spread))
	}
	if earliest := now.Add(minRefreshDelay); at.Before(earliest) {
		return earliest
	}
	return at
}

// retryAt is the next re-authentication after a failed request: a while
// later, but while the current token is still handed out.
func (s *tokenSource) retryAt(t *token, now time.Time) time.Time {
	left := t.deadline.Sub(now)
	d := min(max(s.retryDelay, left/4), left)
	return now.Add(max(d, minRefreshDelay))
}

func (t *token) credentials(refreshAfter time.Time) rueidis.AuthCredentials {
	return rueidis.AuthCredentials{Username: t.username, Password: t.password, RefreshAfter: refreshAfter}
}

// sleep pauses for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

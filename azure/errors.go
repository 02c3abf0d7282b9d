package azure

import (
	"errors"
	"fmt"
)

// ErrInvalidOptions is wrapped by every error about a setting of [Options] or
// a part of a URL given to [ParseURL]. The message names the setting.
var ErrInvalidOptions = errors.New("azure: invalid options")

// ErrInsecure is wrapped by the error for a setting that would weaken TLS:
// certificate verification turned off, plain TCP, or a protocol older than
// TLS 1.2. It wraps [ErrInvalidOptions]. Azure Managed Redis receives access
// keys and Entra ID tokens over that connection, so aside refuses rather than
// warns.
var ErrInsecure = fmt.Errorf("%w: insecure TLS setting refused", ErrInvalidOptions)

// ErrCredential is wrapped by every failure to obtain a usable Microsoft Entra
// ID token: the credential's own error (also wrapped, for errors.As), a token
// request that timed out, or a token that aside cannot use. The message never
// contains a token.
var ErrCredential = errors.New("azure: Entra ID token")

// ErrNoOID is wrapped when a token carries no "oid" claim. It wraps
// [ErrCredential]. Azure Managed Redis expects the object ID of the principal
// as the user name of AUTH, and aside reads it from that claim; a token
// without it is usually not an access token for [Scope] (an ID token, or a
// token of another kind).
var ErrNoOID = fmt.Errorf("%w has no oid claim", ErrCredential)

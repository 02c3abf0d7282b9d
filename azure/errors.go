package azure

import "errors"

// ErrInvalidOptions is wrapped by every error about a setting of [Options] or
// a part of a URL given to [ParseURL]. The message names the setting.
var ErrInvalidOptions = errors.New("azure: invalid options")

// ErrInsecure is wrapped, together with [ErrInvalidOptions], by the error for
// a setting that would weaken TLS: certificate verification turned off, or a
// protocol older than TLS 1.2. Azure Managed Redis sends access keys and Entra
// ID tokens over that connection, so aside refuses rather than warns.
var ErrInsecure = errors.New("azure: insecure TLS setting refused")

// ErrCredential is wrapped by every failure to obtain a usable Microsoft Entra
// ID token: the credential's own error (also wrapped, for errors.As), a token
// request that timed out, or a token that aside cannot use. The message never
// contains a token.
var ErrCredential = errors.New("azure: Entra ID token")

// ErrNoOID is wrapped, together with [ErrCredential], when a token carries no
// "oid" claim. Azure Managed Redis expects the object ID of the principal as
// the user name of AUTH, and aside reads it from that claim; a token without
// it usually means the credential issued a token of another kind (an ID token,
// or one for another resource).
var ErrNoOID = errors.New("azure: token has no oid claim")

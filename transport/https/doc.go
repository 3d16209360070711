// Package https delivers transfers to HTTPS endpoints: a file is POSTed
// (or PUT) to a URL, streamed from its source chunk by chunk and never
// held in memory whole. Import it as httpstransport where the name
// collides.
//
// # Settings
//
// A route's destination {"type": "https", "endpoint": "NAME"} names an
// entry of the routing file's "https" section, which this package owns
// (ParseEndpoints decodes, defaults and validates it; Endpoint documents
// each field):
//
//	"https": {
//	  "lab": {
//	    "url": "https://lab.example.org/api/reports",
//	    "method": "POST",
//	    "mode": "whole",
//	    "auth": {"type": "oauth2", "tokenURL": "https://id.example.org/token",
//	             "clientId": "ferry", "clientSecret": "secret:lab/client", "scope": "upload"},
//	    "headers": {"X-Org": "ferry", "X-Tenant-Key": "ssm:/lab/tenant"},
//	    "caBundle": "secret:lab/ca", "clientCert": "secret:lab/cert", "clientKey": "secret:lab/key",
//	    "timeout": "5m", "maxErrorBody": "1KiB"
//	  }
//	}
//
// The URL must be https; TLS is always verified, against caBundle's
// certificates when given (they replace the system roots, for the token
// URL too) and with clientCert/clientKey presented when given. Every
// credential is a secret reference (secret:NAME or ssm:NAME); a header's
// value may be either a literal or a reference.
//
// # Modes
//
// In mode "whole" (the default) the file is one request, made when the
// last chunk is sent: earlier SendChunk calls only check that the source
// has their chunk. The request body reads the chunks from the source one
// after another as it is sent, with Content-Length the file's size (or
// chunked encoding when the source chose the chunks and their lengths are
// not known yet). A retry of the last chunk sends the whole file again.
//
// In mode "ranged" every chunk is a request of its own with
// Content-Range: bytes first-last/size; a retry re-sends one chunk. A
// transfer whose source chooses the chunks (a MESH message) cannot be sent
// in ranges. A file of one chunk is one request without Content-Range in
// either mode.
//
// Every request carries X-Ferry-Transfer-Id (the transfer id) and
// Idempotency-Key (the transfer id, with "/<chunk>" in ranged mode), and
// Content-Disposition with the sanitised filename when the sender gave
// one, so a receiver can recognise a repeated request and replace rather
// than duplicate. A body over 1 MiB (or of unknown length) is sent with
// Expect: 100-continue, as curl does, so that a receiver refusing the
// request says so before the file is sent.
//
// With "soap" set (mode whole only) the payload is wrapped in a SOAP 1.1 or
// 1.2 envelope as it streams: the body element Operation in Namespace holds
// a "payload" element with the file in base64. SOAP 1.1 sends
// Content-Type text/xml; charset=utf-8 and a SOAPAction header; SOAP 1.2
// sends application/soap+xml; charset=utf-8; action="…".
//
// # Authentication
//
//   - none.
//   - apiKey: the key sent in header (X-API-Key by default).
//   - basic: HTTP basic with username and password.
//   - oauth2: the client credentials grant at tokenURL (client id and
//     secret sent with HTTP basic, scope when given); the bearer token is
//     cached per endpoint until a minute before it expires.
//   - jwt: a JWT signed with privateKey (RS256 for an RSA key; ES256,
//     ES384 or ES512 for an EC key) claiming iss, sub, aud, iat, a random
//     jti and exp five minutes on, with kid = keyId. Without tokenURL the
//     JWT itself is the bearer token of every request. With tokenURL it is
//     a client assertion exchanged for an access token (RFC 7523 §2.2, as
//     ReportStream takes it): grant_type=client_credentials,
//     client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer,
//     client_assertion=<jwt>, scope; the token is cached as for oauth2.
//
// When a token from a token URL is refused with 401, it is dropped, a new
// one fetched and the request made once more (its body read afresh from
// the source). Secrets and tokens are never logged nor put in errors.
//
// # Status classes
//
// One function (classify) maps responses to errors, each a *domain.Error
// with Code the status:
//
//   - 2xx: success.
//   - 3xx: a final KindInvalid failure naming the Location ("redirect not
//     allowed by the endpoint"), unless followRedirects is set. Then up to
//     10 redirects are followed, to https URLs only, the body is sent
//     again for 307 and 308, and on a change of host the headers holding
//     secrets (the API key, headers given as secret references) are
//     dropped, as net/http drops Authorization.
//   - 401, 403: final KindUnauthorized.
//   - 408, 429, 5xx: KindUnavailable (retryable), with the Retry-After
//     header (seconds or an HTTP date) as domain.Error.RetryAfter.
//   - any other 4xx: final KindInvalid.
//
// A failure's message holds the status and up to maxErrorBody bytes of the
// response body, control characters removed. A network error or a timeout
// is KindUnavailable; a certificate the endpoint's roots do not trust is
// final KindInvalid.
package https

package domain

import "strings"

// IsSecretRef reports whether s is a reference to a secret kept outside the
// configuration rather than a literal value:
//
//	secret:NAME   a Secrets Manager secret
//	ssm:NAME      an SSM parameter (String or SecureString)
//
// Settings that hold credentials (a transport's passwords, keys and
// certificates) accept only references, so that a routing file never holds
// a secret; each transport's Validate uses this check, and the composition
// root resolves the references.
func IsSecretRef(s string) bool {
	return strings.HasPrefix(s, "secret:") || strings.HasPrefix(s, "ssm:")
}

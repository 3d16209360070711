package app

import (
	"context"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/internal/awserr"
)

// Secrets resolves references to secrets and settings kept in AWS (see
// domain.IsSecretRef):
//
//	secret:NAME   a Secrets Manager secret (string or binary)
//	ssm:NAME      an SSM parameter (String or SecureString, decrypted)
//
// Values are cached for the life of the process (one cold start) and never
// appear in errors or logs; errors name only the reference.
type Secrets struct {
	SecretsManager *secretsmanager.Client
	SSM            *ssm.Client

	mu    sync.Mutex
	cache map[string][]byte
}

// NewSecrets returns a resolver using the clients of awsCfg.
func NewSecrets(awsCfg aws.Config) *Secrets {
	return &Secrets{SecretsManager: secretsmanager.NewFromConfig(awsCfg), SSM: ssm.NewFromConfig(awsCfg)}
}

// Resolve returns the value ref names. Errors are *domain.Error:
// KindInvalid for a malformed reference, KindNotFound, KindUnauthorized or
// KindUnavailable from the service.
func (s *Secrets) Resolve(ctx context.Context, ref string) ([]byte, error) {
	s.mu.Lock()
	if v, ok := s.cache[ref]; ok {
		s.mu.Unlock()
		return v, nil
	}
	s.mu.Unlock()
	var v []byte
	switch {
	case strings.HasPrefix(ref, "secret:"):
		name := strings.TrimPrefix(ref, "secret:")
		out, err := s.SecretsManager.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: &name})
		if err != nil {
			return nil, awserr.Classify("secret "+ref, err)
		}
		if out.SecretString != nil {
			v = []byte(*out.SecretString)
		} else {
			v = out.SecretBinary
		}
	case strings.HasPrefix(ref, "ssm:"):
		name := strings.TrimPrefix(ref, "ssm:")
		out, err := s.SSM.GetParameter(ctx, &ssm.GetParameterInput{Name: &name, WithDecryption: aws.Bool(true)})
		if err != nil {
			return nil, awserr.Classify("parameter "+ref, err)
		}
		v = []byte(aws.ToString(out.Parameter.Value))
	default:
		return nil, domain.Errorf(domain.KindInvalid, "%q is not a secret reference (want secret:NAME or ssm:NAME)", redact(ref))
	}
	s.mu.Lock()
	if s.cache == nil {
		s.cache = map[string][]byte{}
	}
	s.cache[ref] = v
	s.mu.Unlock()
	return v, nil
}

// ResolveString resolves ref as text.
func (s *Secrets) ResolveString(ctx context.Context, ref string) (string, error) {
	v, err := s.Resolve(ctx, ref)
	return string(v), err
}

// redact keeps a malformed reference recognisable without echoing what may
// be a secret pasted where a reference belongs.
func redact(s string) string {
	if len(s) <= 4 {
		return "…"
	}
	return s[:4] + "…"
}
